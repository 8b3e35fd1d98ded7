"""transcribe: audio, and the audio track of video, becomes text with faster-whisper. Voice-activity
filtering skips silence; stretches of speech keep their start and end times, so a search hit can
point into the recording. The container's creation_time, where a phone wrote one, is the capture time."""
from __future__ import annotations

import io
from datetime import datetime

import av

from events.catalogue import FileUploaded, TextExtracted
from shared import dates
from shared.models import Whisper
from shared.stage import Context, Rejected, Stage, Unsupported, serve
from shared.textdoc import TextDoc

STRETCH_CHARS, STRETCH_SECONDS = 800, 60.0  # Whisper's segments are a sentence; passages are longer
# A multilingual model reads a recording longer than one of Whisper's 30-s windows stretch by stretch: speech
# between pauses of LANGUAGE_PAUSE_MS gets its own language detection (one encoder pass each), and each run of
# one language is transcribed in it. More stretches than MAX_STRETCHES: Whisper's per-window detection alone.
LANGUAGE_PAUSE_MS, MAX_STRETCHES, WINDOW_S, RATE = 1000, 16, 30.0, 16000


def header(data: bytes) -> tuple[float, datetime | None]:
    """Read the container's header only: a recording over the limit is refused before decoding. Its
    length, and when it was recorded where the container says (creation_time: phones write it in UTC)."""
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise Unsupported("the recording has no audio track")
            made = container.metadata.get("creation_time") or container.streams.audio[0].metadata.get("creation_time")
            return (container.duration or 0) / av.time_base, dates.iso(made, "UTC")
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
        seconds, ctx.captured_at = header(data)
        if seconds > self.max_seconds:
            raise Rejected(f"the recording lasts {seconds / 60:.0f} min; the limit is "
                           f"{self.max_seconds / 60:.0f} min (MAX_RECORDING_SECONDS)")
        doc, facts = self.transcribe(data)
        if not doc.segments:
            raise Unsupported(f"no speech found in {facts['duration_s']:.1f} s of audio")
        ctx.detail.update(method="transcription", **facts, chars=len(doc.text), model=self.model.path)
        return doc.save(ctx.blobs, event, "transcription")

    def transcribe(self, data: bytes) -> tuple[TextDoc, dict]:
        try:
            if self.options["language"] is None and self.model.multilingual():
                return self.by_language(data)
            segments, info = self.model.run(io.BytesIO(data), **self.options)
            return passages((s.start, s.end, s.text) for s in segments), facts(info)
        except av.FFmpegError as e:
            raise Rejected(f"not a readable recording: {e}") from None

    def by_language(self, data: bytes) -> tuple[TextDoc, dict]:
        """A multilingual model: each run of speech in one language transcribed in it (an English memo that goes
        on in German), where Whisper alone detects once per 30-s window and reads the German as English words."""
        from faster_whisper import decode_audio
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        audio = decode_audio(io.BytesIO(data), RATE)
        stretches = get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=LANGUAGE_PAUSE_MS))
        speech = sum(s["end"] - s["start"] for s in stretches) / RATE
        if speech <= WINDOW_S or not 1 < len(stretches) <= MAX_STRETCHES:  # one window, or too many to check
            segments, info = self.model.run(audio, **self.options)
            return passages((s.start, s.end, s.text) for s in segments), facts(info)
        runs: list[list] = []  # [first sample, last sample, language, probability]
        for stretch in stretches:
            language, probability = self.model.detect(audio[stretch["start"]:stretch["end"]])
            if runs and runs[-1][2] == language:
                runs[-1][1] = stretch["end"]
            else:
                runs.append([stretch["start"], stretch["end"], language, probability])
        found, said = [], {}
        for first, last, language, _ in runs:
            segments, _ = self.model.run(audio[first:last], **self.options | {"language": language,
                                                                              "multilingual": False})
            offset = first / RATE
            found += [(s.start + offset, s.end + offset, s.text) for s in segments]
            said[language] = said.get(language, 0) + (last - first) / RATE
        main = max(said, key=said.get)
        return passages(found), dict(language=main, languages=list(said),
                                     language_probability=round(max(r[3] for r in runs if r[2] == main), 2),
                                     duration_s=round(len(audio) / RATE, 1), speech_s=round(speech, 1))


def facts(info) -> dict:
    """What the file's record says of a transcription: the language found, how long, how much speech."""
    return dict(language=info.language, language_probability=round(info.language_probability, 2),
                duration_s=round(info.duration, 1), speech_s=round(info.duration_after_vad, 1))


def passages(segments) -> TextDoc:
    """Whisper's (start, end, text) segments, a generator (decoding happens as it is read), joined into
    passages of at most STRETCH_CHARS or STRETCH_SECONDS, each with its times."""
    doc, texts, start, end = TextDoc(), [], 0.0, 0.0
    for seg_start, seg_end, text in segments:
        if texts and (sum(map(len, texts)) > STRETCH_CHARS or seg_end - start > STRETCH_SECONDS):
            doc.add(" ".join(texts), start_s=round(start, 1), end_s=round(end, 1))
            texts = []
        if not texts:
            start = seg_start
        texts.append(text.strip())
        end = seg_end
    doc.add(" ".join(texts), start_s=round(start, 1), end_s=round(end, 1))
    return doc


handle = serve(Transcribe())
