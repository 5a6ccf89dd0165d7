"""A synthetic feature-level stream: class templates embedded in noise.

It needs no data and no audio front end, so it serves the smoke run of
`resetfree demo` and tests. Real keyword streams are built from audio.
"""

import numpy as np

from keras_resetfree.streams.stream import Stream


def template_stream(
    num_segments,
    num_classes=4,
    num_features=16,
    segment_frames=(20, 30),
    gap_frames=(10, 40),
    snr=1.0,
    noise_label=-1,
    seed=0,
    template_seed=1234,
):
    """Concatenates noisy class templates with noise gaps of random length.

    Each class has a fixed template: a random smooth trajectory through the
    feature space (`template_seed` fixes the templates, so training and
    evaluation streams share them). A segment is its class template
    time-stretched to a random length, plus unit Gaussian noise; gaps are
    noise alone.

    Args:
        num_segments: number of segments in the stream.
        num_classes: number of classes.
        num_features: features per frame.
        segment_frames: (min, max) length of a segment in frames.
        gap_frames: (min, max) length of a gap in frames.
        snr: amplitude of the templates relative to the unit noise.
        noise_label: label of the gap frames.
        seed: seed of this stream (segment order, lengths and noise).
        template_seed: seed of the class templates.

    Returns:
        A `Stream` (no frame rate: the frames are abstract).
    """
    if num_segments <= 0 or num_classes <= 1:
        raise ValueError(
            "template_stream needs num_segments >= 1 and num_classes >= 2."
        )
    template_rng = np.random.default_rng(template_seed)
    knots = 6
    templates = template_rng.normal(size=(num_classes, knots, num_features))
    rng = np.random.default_rng(seed)
    pieces, labels, segments = [], [], []
    position = 0
    for _ in range(num_segments):
        gap = int(rng.integers(gap_frames[0], gap_frames[1] + 1))
        pieces.append(rng.normal(size=(gap, num_features)))
        labels.append(np.full(gap, noise_label))
        position += gap
        label = int(rng.integers(num_classes))
        length = int(rng.integers(segment_frames[0], segment_frames[1] + 1))
        grid = np.linspace(0, knots - 1, length)
        shape = np.stack(
            [
                np.interp(grid, np.arange(knots), templates[label, :, f])
                for f in range(num_features)
            ],
            axis=-1,
        )
        pieces.append(snr * shape + rng.normal(size=(length, num_features)))
        labels.append(np.full(length, label))
        segments.append((position, position + length, label))
        position += length
    tail = int(rng.integers(gap_frames[0], gap_frames[1] + 1))
    pieces.append(rng.normal(size=(tail, num_features)))
    labels.append(np.full(tail, noise_label))
    labels = np.concatenate(labels).astype("int32")
    return Stream(
        features=np.concatenate(pieces).astype("float32"),
        labels=labels,
        mask=(labels != noise_label).astype("float32"),
        segments=np.asarray(segments, dtype="int64"),
        label_names=[f"class_{i}" for i in range(num_classes)],
        noise_label=noise_label,
    )
