"""The engine: one worker thread that owns MLX, its queue, the resident model and the two
decoders. Plain Python: it knows no HTTP, Django settings or request logs (inference/runtime.py
builds the process's engine from settings).

Layers, each importing only those before it: types, stops, prompt_cache, scheduler ->
backends -> session -> sequence -> decode, batch, embed -> engine.
"""
from .engine import Engine, EngineObserver
from .scheduler import Job, JobStream
from .types import (
    ChatRequest, ContextLengthExceeded, Delta, Embedded, EmbedRequest, EngineError, Event, Failed, Finished,
    ImagesNotPrepared,
    Loading, ModelLoadError, QueueFull, RawPrompt, SamplingParams, Started, UnsupportedContent,
)

__all__ = [
    "ChatRequest", "ContextLengthExceeded", "Delta", "Embedded", "EmbedRequest", "Engine", "EngineError", "EngineObserver", "Event",
    "Failed", "Finished", "ImagesNotPrepared", "Job", "JobStream", "Loading", "ModelLoadError", "QueueFull",
    "RawPrompt", "SamplingParams", "Started", "UnsupportedContent",
]
