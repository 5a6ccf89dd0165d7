#include "frame_io.h"

#include <math.h>

namespace resetfree {
namespace {

long Clamp(long value, long low, long high) {
  return value < low ? low : (value > high ? high : value);
}

}  // namespace

void WriteInput(TfLiteTensor* input, const float* features, int count) {
  const float scale = input->params.scale;
  const long zero = input->params.zero_point;
  for (int i = 0; i < count; ++i) {
    if (input->type == kTfLiteInt8) {
      input->data.int8[i] = static_cast<int8_t>(
          Clamp(lroundf(features[i] / scale) + zero, -128, 127));
    } else if (input->type == kTfLiteInt16) {
      input->data.i16[i] = static_cast<int16_t>(
          Clamp(lroundf(features[i] / scale) + zero, -32768, 32767));
    } else {
      input->data.f[i] = features[i];
    }
  }
}

void ReadOutput(const TfLiteTensor* output, float* values, int count) {
  const float scale = output->params.scale;
  const int zero = output->params.zero_point;
  for (int i = 0; i < count; ++i) {
    if (output->type == kTfLiteInt8) {
      values[i] = (output->data.int8[i] - zero) * scale;
    } else if (output->type == kTfLiteInt16) {
      values[i] = (output->data.i16[i] - zero) * scale;
    } else {
      values[i] = output->data.f[i];
    }
  }
}

}  // namespace resetfree
