// Never-reset keyword spotting on an Arduino Nano 33 BLE Sense (nRF52840,
// PDM microphone): 16 kHz audio -> MFCC frame (every kFrameStep samples) ->
// one Invoke of the stateful int8 model per frame, its recurrent state kept
// inside the model and never reset -> posterior smoothing -> detections on
// the serial port.
//
// The model-specific files (model_data.*, model_ops.h, model_settings.h,
// feature_config.*) come from keras_resetfree.export.write_sketch (or
// `resetfree demo --sketch <this folder>`); see README.md beside this folder.

#include <PDM.h>
#include <TensorFlowLite.h>

#include "audio_frontend.h"
#include "detector.h"
#include "frame_io.h"
#include "model_data.h"
#include "model_ops.h"
#include "model_settings.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_resource_variable.h"
#include "tensorflow/lite/micro/system_setup.h"
#include "tensorflow/lite/schema/schema_generated.h"

static_assert(kNumResourceVariables > 0,
              "the sketch needs a model with internal state");

namespace {

// Audio: the PDM interrupt writes into a ring, loop() reads it.
constexpr int kRingSamples = 4096;  // 256 ms at 16 kHz
int16_t g_ring[kRingSamples];
volatile uint32_t g_written = 0;  // samples written since start
uint32_t g_read = 0;              // samples read since start
uint32_t g_lost = 0;              // samples dropped because loop() fell behind

resetfree::Framer g_framer;
resetfree::MfccFrontend g_frontend;
resetfree::PosteriorDetector<kNumClasses, kSmoothingFrames> g_detector(
    kNumClasses, kDetectionThreshold, kSmoothingFrames, kRefractoryFrames,
    kIgnoredClasses);

alignas(16) uint8_t g_arena[kTensorArenaSize];
tflite::MicroInterpreter* g_interpreter = nullptr;
TfLiteTensor* g_input = nullptr;
TfLiteTensor* g_output = nullptr;
uint64_t g_frames = 0;  // 64-bit: no wrap in any board's life
uint32_t g_invoke_micros = 0;

void OnPdmData() {
  int16_t buffer[256];
  int bytes = PDM.available();
  if (bytes > static_cast<int>(sizeof(buffer))) bytes = sizeof(buffer);
  PDM.read(buffer, bytes);
  int samples = bytes / 2;
  uint32_t at = g_written;
  for (int i = 0; i < samples; ++i) g_ring[(at + i) % kRingSamples] = buffer[i];
  g_written = at + samples;
}

void Fail(const char* message) {
  Serial.println(message);
  while (true) delay(1000);
}

// One frame: features -> model -> probabilities -> detector.
void ProcessFrame(const int16_t* frame) {
  float features[resetfree::kNumCoefficients];
  g_frontend.Compute(frame, features);
  resetfree::MfccFrontend::Standardize(features);
  resetfree::WriteInput(g_input, features, resetfree::kNumCoefficients);
  uint32_t start = micros();
  if (g_interpreter->Invoke() != kTfLiteOk) Fail("Invoke failed");
  g_invoke_micros += micros() - start;

  float logits[kNumClasses];
  resetfree::ReadOutput(g_output, logits, kNumClasses);
  float probs[kNumClasses];
  resetfree::Softmax(logits, kNumClasses, probs);
  int detected = g_detector.Update(probs);
  if (detected >= 0) {
    Serial.print("heard ");
    Serial.print(kLabels[detected]);
    Serial.print(" (score ");
    Serial.print(g_detector.LastScore(), 2);
    Serial.print(") at ");
    // Seconds since start, in 64-bit arithmetic: the stream never ends.
    Serial.print(static_cast<unsigned long long>(resetfree::FrameSeconds(
        g_frames, resetfree::kFrameStep, resetfree::kSampleRate)));
    Serial.println(" s");
  }
  ++g_frames;
  if (g_frames % 500 == 0) {  // every 10 s at a 20 ms step
    Serial.print("frames ");
    Serial.print(static_cast<unsigned long long>(g_frames));
    Serial.print(", mean Invoke ");
    Serial.print(g_invoke_micros / 500);
    Serial.print(" us, samples lost ");
    Serial.println(g_lost);
    g_invoke_micros = 0;
  }
}

}  // namespace

void setup() {
  Serial.begin(115200);
  tflite::InitializeTarget();

  const tflite::Model* model = tflite::GetModel(g_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) Fail("model schema version mismatch");
  static ModelOpResolver resolver;
  if (RegisterModelOps(resolver) != kTfLiteOk) Fail("op registration failed");
  if (!g_detector.Valid()) Fail("detector settings out of range");

  // The recurrent state lives in resource variables, allocated from the arena.
  tflite::MicroAllocator* allocator =
      tflite::MicroAllocator::Create(g_arena, kTensorArenaSize);
  tflite::MicroResourceVariables* variables =
      tflite::MicroResourceVariables::Create(allocator, kNumResourceVariables);
  static tflite::MicroInterpreter interpreter(model, resolver, allocator, variables);
  g_interpreter = &interpreter;
  if (interpreter.AllocateTensors() != kTfLiteOk) Fail("AllocateTensors failed: arena too small?");
  g_input = interpreter.input(0);
  g_output = interpreter.output(0);
  if (g_input->dims->data[g_input->dims->size - 1] != resetfree::kNumCoefficients ||
      g_output->dims->data[g_output->dims->size - 1] != kNumClasses) {
    Fail("model input/output sizes do not match feature_config.h/model_settings.h");
  }

  PDM.onReceive(OnPdmData);
  if (!PDM.begin(1, resetfree::kSampleRate)) Fail("PDM microphone failed to start");
  Serial.print("listening; arena used ");
  Serial.print(interpreter.arena_used_bytes());
  Serial.println(" B");
}

void loop() {
  uint32_t written = g_written;
  if (written - g_read > kRingSamples) {  // loop() fell behind: say so, skip ahead
    g_lost += written - g_read - kRingSamples;
    g_read = written - kRingSamples;
  }
  while (g_read != written) {
    // The contiguous run of the ring from g_read.
    int offset = g_read % kRingSamples;
    int available = static_cast<int>(written - g_read);
    int run = available < kRingSamples - offset ? available : kRingSamples - offset;
    int taken = g_framer.Push(g_ring + offset, run);
    g_read += taken;
    if (g_framer.FrameReady()) {
      ProcessFrame(g_framer.Frame());
      g_framer.Advance();
    }
  }
}
