// The model's input and output tensors as float frames, for int8, int16x8
// and float models alike: shared by the sketch and the Cortex-M harness.
#ifndef RESETFREE_FRAME_IO_H_
#define RESETFREE_FRAME_IO_H_

#include "tensorflow/lite/c/common.h"

namespace resetfree {

// Writes `count` standardized features into `input`: quantized with its
// scale and zero point (rounded half away from zero, saturated) when it is
// int8 or int16, as they are when it is float.
void WriteInput(TfLiteTensor* input, const float* features, int count);

// Reads `count` values of `output` as floats (dequantized).
void ReadOutput(const TfLiteTensor* output, float* values, int count);

}  // namespace resetfree

#endif  // RESETFREE_FRAME_IO_H_
