// C entry points to the sketch's portable sources (keras_resetfree/export/resetfree_kws), so
// tests/test_sketch.py can run them on the host through ctypes.
#include <stdint.h>

#include "audio_frontend.h"
#include "detector.h"

extern "C" {

// Streams `count` samples through the sketch's Framer in pieces of
// `chunk_sizes` (cycled), as the PDM interrupt delivers them, and writes the
// standardised MFCCs of every completed frame into `out` (frames x
// coefficients). Returns the number of frames.
int rf_stream_features(const int16_t* audio, int count, const int* chunk_sizes,
                       int num_chunks, float* out, int max_frames) {
  static resetfree::Framer framer;
  static resetfree::MfccFrontend frontend;
  framer = resetfree::Framer();
  int frames = 0, at = 0, chunk = 0;
  while (at < count) {
    int size = chunk_sizes[chunk++ % num_chunks];
    if (size > count - at) size = count - at;
    int end = at + size;
    while (at < end) {
      at += framer.Push(audio + at, end - at);
      if (framer.FrameReady()) {
        if (frames == max_frames) return -1;
        float* row = out + frames * resetfree::kNumCoefficients;
        frontend.Compute(framer.Frame(), row);
        resetfree::MfccFrontend::Standardize(row);
        ++frames;
        framer.Advance();
      }
    }
  }
  return frames;
}

int rf_num_coefficients() { return resetfree::kNumCoefficients; }

// Runs the sketch's detector over `frames` x `classes` probabilities; writes
// (frame, class) of each detection. Returns the number of detections, or -1
// for invalid settings.
// The detector's frame count starts at `start_frame` (tests start it just below
// a wrap); detections are reported at frame - start_frame, computed the way a
// board would, in unsigned 64-bit arithmetic.
int rf_detect(const float* probs, int frames, int classes, double threshold,
              int smoothing, int refractory, const bool* ignored,
              int* out_frames, int* out_classes, uint64_t start_frame) {
  typedef resetfree::PosteriorDetector<64, 64> Detector;
  static Detector* detector = nullptr;
  delete detector;
  detector = new Detector(classes, threshold, smoothing, refractory, ignored);
  if (!detector->Valid()) return -1;
  detector->SetFrame(start_frame - 1);
  int found = 0;
  for (int t = 0; t < frames; ++t) {
    int c = detector->Update(probs + t * classes);
    if (c >= 0) {
      out_frames[found] = static_cast<int>(detector->Frame() - start_frame);
      out_classes[found] = c;
      ++found;
    }
  }
  return found;
}

uint64_t rf_frame_seconds(uint64_t frames, int frame_step, int sample_rate) {
  return resetfree::FrameSeconds(frames, frame_step, sample_rate);
}

void rf_softmax(const float* logits, int n, float* probs) {
  resetfree::Softmax(logits, n, probs);
}
}
