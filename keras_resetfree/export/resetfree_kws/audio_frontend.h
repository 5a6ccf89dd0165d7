// MFCC features of a 16-bit audio stream, frame by frame: the same numbers as
// keras_resetfree.features.MFCC (framing, periodic Hann window, FFT, power
// spectrum, HTK-mel filters, log, DCT-II), then the standardisation the model
// was trained with. Portable C++11: no Arduino or TFLite Micro dependency, so
// the library's tests compile it on the host and compare it with the Keras
// layer on the same audio.
#ifndef RESETFREE_AUDIO_FRONTEND_H_
#define RESETFREE_AUDIO_FRONTEND_H_

#include <stdint.h>

#include "feature_config.h"

namespace resetfree {

// Cuts a sample stream into the frames the model was trained on: frame t is
// samples [t * kFrameStep, t * kFrameStep + kFrameLength) of the stream.
class Framer {
 public:
  // Takes samples until the next frame is complete; returns how many it took
  // (fewer than `count` when a frame became ready: process it, Advance(), and
  // push the rest).
  int Push(const int16_t* samples, int count);
  bool FrameReady() const { return filled_ == kFrameLength; }
  // The ready frame, oldest sample first.
  const int16_t* Frame() const { return buffer_; }
  // Moves to the next frame: drops kFrameStep samples.
  void Advance();

 private:
  int16_t buffer_[kFrameLength];
  int filled_ = 0;
  int skip_ = 0;  // samples to drop before the next frame (kFrameStep > kFrameLength)
};

class MfccFrontend {
 public:
  // `frame`: kFrameLength samples, full scale 32768 = 1.0 (as the Keras layer
  // is fed int16 audio / 32768). Writes kNumCoefficients MFCCs.
  void Compute(const int16_t* frame, float* mfcc);
  // (mfcc - mean) / std, in place: the Normalization the model was trained
  // behind, done in float before int8 quantization of the model input.
  static void Standardize(float* mfcc);

 private:
  void Fft();  // in place on re_, im_ (radix 2, kFftLength points)

  float re_[kFftLength];
  float im_[kFftLength];
  float log_mel_[kNumMelBins];
};

}  // namespace resetfree

#endif  // RESETFREE_AUDIO_FRONTEND_H_
