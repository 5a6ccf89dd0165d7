#include "audio_frontend.h"

#include <math.h>
#include <string.h>

namespace resetfree {

int Framer::Push(const int16_t* samples, int count) {
  int taken = 0;
  while (taken < count && skip_ > 0) {
    ++taken;
    --skip_;
  }
  int wanted = kFrameLength - filled_;
  int n = count - taken < wanted ? count - taken : wanted;
  memcpy(buffer_ + filled_, samples + taken, n * sizeof(int16_t));
  filled_ += n;
  return taken + n;
}

void Framer::Advance() {
  if (kFrameStep < kFrameLength) {
    memmove(buffer_, buffer_ + kFrameStep,
            (kFrameLength - kFrameStep) * sizeof(int16_t));
    filled_ = kFrameLength - kFrameStep;
  } else {
    filled_ = 0;
    skip_ = kFrameStep - kFrameLength;
  }
}

void MfccFrontend::Compute(const int16_t* frame, float* mfcc) {
  for (int i = 0; i < kFrameLength; ++i) {
    re_[i] = kWindow[i] * (frame[i] * (1.0f / 32768.0f));
  }
  for (int i = kFrameLength; i < kFftLength; ++i) re_[i] = 0.0f;
  for (int i = 0; i < kFftLength; ++i) im_[i] = 0.0f;
  Fft();
  // Power spectrum bins 0..kFftLength/2, overwriting re_.
  for (int k = 0; k <= kFftLength / 2; ++k) {
    re_[k] = re_[k] * re_[k] + im_[k] * im_[k];
  }
  int w = 0;
  for (int m = 0; m < kNumMelBins; ++m) {
    float energy = 0.0f;
    for (int j = 0; j < kMelBinCount[m]; ++j) {
      energy += kMelWeights[w++] * re_[kMelFirstBin[m] + j];
    }
    log_mel_[m] = logf(energy + kLogOffset);
  }
  for (int c = 0; c < kNumCoefficients; ++c) {
    float sum = 0.0f;
    for (int m = 0; m < kNumMelBins; ++m) {
      sum += log_mel_[m] * kDct[m * kNumCoefficients + c];
    }
    mfcc[c] = sum;
  }
}

void MfccFrontend::Standardize(float* mfcc) {
  for (int c = 0; c < kNumCoefficients; ++c) {
    mfcc[c] = (mfcc[c] - kFeatureMean[c]) * kFeatureInverseStd[c];
  }
}

void MfccFrontend::Fft() {
  // Bit-reversal permutation.
  for (int i = 1, j = 0; i < kFftLength; ++i) {
    int bit = kFftLength >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      float t = re_[i];
      re_[i] = re_[j];
      re_[j] = t;
      t = im_[i];
      im_[i] = im_[j];
      im_[j] = t;
    }
  }
  // Butterflies; twiddle k of a length-`size` stage is exp(-2 pi i k / size),
  // read from the kFftLength table at stride kFftLength / size.
  for (int size = 2; size <= kFftLength; size <<= 1) {
    int half = size >> 1;
    int stride = kFftLength / size;
    for (int start = 0; start < kFftLength; start += size) {
      for (int k = 0; k < half; ++k) {
        float c = kTwiddleCos[k * stride];
        float s = kTwiddleSin[k * stride];
        int a = start + k;
        int b = a + half;
        float tr = re_[b] * c + im_[b] * s;
        float ti = im_[b] * c - re_[b] * s;
        re_[b] = re_[a] - tr;
        im_[b] = im_[a] - ti;
        re_[a] += tr;
        im_[a] += ti;
      }
    }
  }
}

}  // namespace resetfree
