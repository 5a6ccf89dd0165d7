// Runs the sketch's model and portable parts on a Cortex-M4 under QEMU, fed
// from a file on the host through semihosting (newlib's rdimon).
//
// Reads mcu_input.bin: int32 mode, int32 count, then
//   mode 0: `count` frames, each the model's input tensor as bytes (already
//           quantized on the host, as MicroStepper quantizes);
//   mode 1: `count` int16 audio samples at resetfree::kSampleRate, run through
//           the sketch's Framer, MfccFrontend, WriteInput and detector.
// Writes mcu_output.bin: the output tensor's bytes after every Invoke. Prints
// "arena_used N", then in mode 1 "detection FRAME CLASS" lines, then
// "frames N" and "done".
#include <stdint.h>
#include <stdio.h>

#include "audio_frontend.h"
#include "detector.h"
#include "frame_io.h"
#include "model_data.h"
#include "model_ops.h"
#include "model_settings.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_resource_variable.h"
#include "tensorflow/lite/micro/micro_time.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace tflite {
// micro_time.cc is left out (see the Makefile): no clock in the emulator.
uint32_t ticks_per_second() { return 0; }
uint32_t GetCurrentTimeTicks() { return 0; }
}  // namespace tflite

namespace {

alignas(16) uint8_t g_arena[kTensorArenaSize];

int Fail(const char* message) {
  printf("error: %s\n", message);
  return 1;
}

void Log(const char* text) { fputs(text, stdout); }

}  // namespace

int main() {
  RegisterDebugLogCallback(Log);
  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) return Fail("schema version");
  static ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) return Fail("op registration");
  tflite::MicroAllocator* allocator =
      tflite::MicroAllocator::Create(g_arena, kTensorArenaSize);
  tflite::MicroResourceVariables* variables =
      tflite::MicroResourceVariables::Create(allocator, kNumResourceVariables);
  static tflite::MicroInterpreter interpreter(model, resolver, allocator,
                                              variables);
  if (interpreter.AllocateTensors() != kTfLiteOk) return Fail("AllocateTensors");
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  printf("arena_used %u\n", static_cast<unsigned>(interpreter.arena_used_bytes()));

  FILE* in = fopen("mcu_input.bin", "rb");
  FILE* out = fopen("mcu_output.bin", "wb");
  if (in == nullptr || out == nullptr) return Fail("cannot open mcu_input.bin / mcu_output.bin");
  int32_t header[2];
  if (fread(header, sizeof(int32_t), 2, in) != 2) return Fail("short header");
  const int32_t mode = header[0], count = header[1];
  long frames = 0;

  if (mode == 0) {
    for (int32_t t = 0; t < count; ++t) {
      if (fread(input->data.raw, 1, input->bytes, in) != input->bytes) return Fail("short input");
      if (interpreter.Invoke() != kTfLiteOk) return Fail("Invoke");
      fwrite(output->data.raw, 1, output->bytes, out);
      ++frames;
    }
  } else if (mode == 1) {
    static resetfree::Framer framer;
    static resetfree::MfccFrontend frontend;
    static resetfree::PosteriorDetector<kNumClasses, kSmoothingFrames> detector(
        kNumClasses, kDetectionThreshold, kSmoothingFrames, kRefractoryFrames,
        kIgnoredClasses);
    if (!detector.Valid()) return Fail("detector settings");
    int16_t block[256];
    int32_t left = count;
    while (left > 0) {
      const int want = left < 256 ? left : 256;
      if (fread(block, sizeof(int16_t), want, in) != static_cast<size_t>(want)) return Fail("short audio");
      left -= want;
      int offset = 0;
      while (offset < want) {
        offset += framer.Push(block + offset, want - offset);
        if (!framer.FrameReady()) continue;
        float features[resetfree::kNumCoefficients];
        frontend.Compute(framer.Frame(), features);
        resetfree::MfccFrontend::Standardize(features);
        resetfree::WriteInput(input, features, resetfree::kNumCoefficients);
        if (interpreter.Invoke() != kTfLiteOk) return Fail("Invoke");
        fwrite(output->data.raw, 1, output->bytes, out);
        float logits[kNumClasses];
        float probs[kNumClasses];
        resetfree::ReadOutput(output, logits, kNumClasses);
        resetfree::Softmax(logits, kNumClasses, probs);
        const int detected = detector.Update(probs);
        if (detected >= 0) printf("detection %ld %d\n", frames, detected);
        framer.Advance();
        ++frames;
      }
    }
  } else {
    return Fail("unknown mode");
  }
  fclose(out);
  fclose(in);
  printf("frames %ld\ndone\n", frames);
  return 0;
}
