"""transcribe: audio, and the audio track of video, becomes text with faster-whisper. Voice-activity
filtering skips silence; stretches of speech keep their start and end times, so a search hit can
point into the recording."""
from __future__ import annotations

import io

import av

from events.catalogue import FileUploaded, TextExtracted
from shared.models import Whisper
from shared.stage import Context, Rejected, Stage, Unsupported, serve
from shared.textdoc import TextDoc

STRETCH_CHARS, STRETCH_SECONDS = 800, 60.0  # Whisper's segments are a sentence; passages are longer


def duration(data: bytes) -> float:
    """Read the container's header only: a recording over the limit is refused before decoding."""
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise Unsupported("the recording has no audio track")
            return (container.duration or 0) / av.time_base
    except av.FFmpegError as e:
        raise Rejected(f"not a readable recording: {e}") from None


class Transcribe(Stage):
    name = "transcribe"
    consumes = (FileUploaded,)

    def start(self, cfg) -> None:
        self.model = Whisper(cfg.whisper_model, cfg.whisper_device, cfg.whisper_compute_type, cfg.model_idle_seconds,
                             cfg.omp_thread_limit)
        # No language set: a multilingual model (WHISPER_MODEL=base) detects it, and again every 30 s window
        # (multilingual), so a recording that goes from English to German is transcribed in each; tiny.en
        # reads English only, and says "en".
        self.options = dict(beam_size=cfg.whisper_beam_size, language=cfg.whisper_language or None,
                            multilingual=not cfg.whisper_language, vad_filter=True)
        self.max_seconds = cfg.max_recording_seconds

    def stop(self) -> None:
        self.model.unload()

    def handle(self, event: FileUploaded, ctx: Context) -> TextExtracted:
        data = ctx.blobs.get(event.blob_uri)
        seconds = duration(data)
        if seconds > self.max_seconds:
            raise Rejected(f"the recording lasts {seconds / 60:.0f} min; the limit is "
                           f"{self.max_seconds / 60:.0f} min (MAX_RECORDING_SECONDS)")
        doc, info = self.transcribe(data)
        if not doc.segments:
            raise Unsupported(f"no speech found in {info.duration:.1f} s of audio")
        ctx.detail.update(method="transcription", language=info.language,
                          language_probability=round(info.language_probability, 2),
                          duration_s=round(info.duration, 1), speech_s=round(info.duration_after_vad, 1),
                          chars=len(doc.text), model=self.model.path)
        return doc.save(ctx.blobs, event, "transcription")

    def transcribe(self, data: bytes) -> tuple[TextDoc, object]:
        try:
            segments, info = self.model.run(io.BytesIO(data), **self.options)
            doc, texts, start, end = TextDoc(), [], 0.0, 0.0
            for seg in segments:  # a generator: decoding happens here
                if texts and (sum(map(len, texts)) > STRETCH_CHARS or seg.end - start > STRETCH_SECONDS):
                    doc.add(" ".join(texts), start_s=round(start, 1), end_s=round(end, 1))
                    texts = []
                if not texts:
                    start = seg.start
                texts.append(seg.text.strip())
                end = seg.end
        except av.FFmpegError as e:
            raise Rejected(f"not a readable recording: {e}") from None
        doc.add(" ".join(texts), start_s=round(start, 1), end_s=round(end, 1))
        return doc, info


handle = serve(Transcribe())
