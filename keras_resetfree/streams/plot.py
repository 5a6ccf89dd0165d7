"""A picture of a stream: waveform, features, mask and labels over time."""


def plot_stream(stream, path, start=0, frames=600, title=None):
    """Saves a PNG of `frames` frames of `stream` from `start` (like Figure 3 of the paper).

    Panels: the waveform (when the stream kept it), the features, the mask
    m_t, and the frame labels with the segment spans. Needs matplotlib (the
    `plot` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - environment dependent
        raise ImportError(
            "plot_stream needs the `plot` extra: pip install 'keras-resetfree[plot]'."
        ) from error
    import numpy as np

    end = min(start + frames, len(stream))
    t = np.arange(start, end)
    scale = 1.0 / stream.frame_rate if stream.frame_rate else 1.0
    unit = "s" if stream.frame_rate else "frame"
    panels = 4 if stream.waveform is not None else 3
    fig, axes = plt.subplots(panels, 1, figsize=(12, 2.0 * panels), sharex=True)
    axes = list(axes)
    if stream.waveform is not None:
        hop = len(stream.waveform) / len(stream)
        samples = stream.waveform[int(start * hop) : int(end * hop)]
        axes[0].plot(
            start * scale + np.arange(len(samples)) / (hop / scale), samples, lw=0.3
        )
        axes[0].set_ylabel("waveform")
        axes.pop(0)
    axes[0].imshow(
        stream.features[start:end].T, aspect="auto", origin="lower",
        extent=(start * scale, end * scale, 0, stream.features.shape[1]),
    )  # fmt: skip
    axes[0].set_ylabel("features")
    axes[1].step(t * scale, stream.mask[start:end], where="post")
    axes[1].set_ylabel("mask m_t")
    axes[1].set_ylim(-0.1, 1.1)
    axes[2].step(t * scale, stream.labels[start:end], where="post", color="k")
    for first, last, label in stream.segments:
        if last > start and first < end:
            axes[2].axvspan(
                max(first, start) * scale, min(last, end) * scale, alpha=0.2
            )
            name = (
                stream.label_names[label] if label < len(stream.label_names) else label
            )
            axes[2].text(max(first, start) * scale, label + 0.3, str(name), fontsize=7)
    axes[2].set_ylabel("label")
    axes[2].set_xlabel(unit)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
