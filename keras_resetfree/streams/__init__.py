"""Continual streams: segments with noise between them, every frame labelled."""

from keras_resetfree.streams.template_stream import TemplateStream, template_stream

__all__ = ["TemplateStream", "template_stream"]
