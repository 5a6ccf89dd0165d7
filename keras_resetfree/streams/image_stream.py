"""Sequential Fashion-MNIST with MNIST digits as distractors between the images."""

import numpy as np

from keras_resetfree.streams.stream import Stream

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def image_stream(
    images,
    labels,
    distractors,
    num_segments,
    distractors_between=(0, 2),
    pixels=False,
    noise_label=-1,
    seed=0,
    label_names=FASHION_CLASSES,
):
    """Images fed row by row (or pixel by pixel), with distractor images between them.

    Each segment is 0-2 (`distractors_between`) distractor images (e.g.
    MNIST digits), whose frames are noise, then one labelled image (e.g.
    Fashion-MNIST). Pixels are scaled to [0, 1].

    Args:
        images: `(n, 28, 28)` uint8 labelled images.
        labels: `(n,)` their classes.
        distractors: `(m, 28, 28)` uint8 distractor images.
        num_segments: labelled images in the stream.
        distractors_between: (min, max) distractors before each image.
        pixels: one pixel per frame (784 frames of 1 feature) instead of one
            row per frame (28 frames of 28 features).
        noise_label: label of distractor frames.
        seed: seed of the draws.
        label_names: class names.

    Returns:
        A `Stream` whose mask is the ground truth (1 on labelled-image frames).
    """
    rng = np.random.default_rng(seed)
    images, labels, distractors = (
        np.asarray(images),
        np.asarray(labels),
        np.asarray(distractors),
    )
    if (
        images.ndim != 3
        or distractors.ndim != 3
        or images.shape[1:] != distractors.shape[1:]
    ):
        raise ValueError(
            f"images {images.shape} and distractors {distractors.shape} must be (n, height, width) alike."
        )
    frames_per_image = images.shape[1] * images.shape[2] if pixels else images.shape[1]
    width = 1 if pixels else images.shape[2]
    pieces, frame_labels, segments = [], [], []
    position = 0
    for _ in range(num_segments):
        for _ in range(
            rng.integers(distractors_between[0], distractors_between[1] + 1)
        ):
            pieces.append(distractors[rng.integers(len(distractors))])
            frame_labels.append(np.full(frames_per_image, noise_label))
            position += frames_per_image
        choice = rng.integers(len(images))
        pieces.append(images[choice])
        frame_labels.append(np.full(frames_per_image, labels[choice]))
        segments.append((position, position + frames_per_image, int(labels[choice])))
        position += frames_per_image
    features = (np.stack(pieces).reshape(-1, width) / 255.0).astype("float32")
    frame_labels = np.concatenate(frame_labels).astype("int32")
    return Stream(
        features,
        frame_labels,
        (frame_labels != noise_label).astype("float32"),
        np.asarray(segments, "int64"),
        label_names=list(label_names),
        noise_label=noise_label,
    )
