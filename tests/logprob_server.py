"""A small OpenAI-compatible chat server on a real tiny HF model that answers ``logprobs``/``top_logprobs`` as vLLM
does, with ``return_tokens_as_token_ids`` (tokens named ``token_id:<id>``).

It stands for vLLM, which cannot run on this machine (no GPU), and for ``transformers serve``, which rejects
``logprobs``/``top_logprobs`` (transformers 5.2). The values are the model's own: greedy decoding of the chat-templated
prompt, and at each generated position the log-softmax of the raw logits (vLLM's default ``raw_logprobs``), its top K.
The stop token's entry is part of ``logprobs.content`` when the model stopped on it.

    with LogprobServer(tiny_gpt2) as server:
        server.base_url, server.requests  # http://127.0.0.1:PORT/v1, requests answered so far
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LogprobServer:
    def __init__(self, model_path, name: str = "tiny-teacher"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.manual_seed(0)
        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_path)).eval()
        self.requests = 0
        self._lock = threading.Lock()

    def complete(self, body: dict) -> dict:
        import torch

        tok, model = self.tokenizer, self.model
        ids = tok.apply_chat_template(body["messages"], add_generation_prompt=True, return_tensors="pt")
        ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
        k = int(body.get("top_logprobs") or 0) if body.get("logprobs") else 0
        with self._lock, torch.no_grad():
            self.requests += 1
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=int(body.get("max_tokens") or 16),
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        new = out.sequences[0, ids.shape[1] :].tolist()
        stopped = bool(new) and new[-1] == tok.eos_token_id
        choice: dict = {
            "index": 0,
            "message": {"role": "assistant", "content": tok.decode(new, skip_special_tokens=True)},
            "finish_reason": "stop" if stopped else "length",
        }
        if k:
            content = []
            for step, token in enumerate(new):
                logp = torch.log_softmax(out.logits[step][0].float(), -1)
                values, top = logp.topk(k)
                content.append(
                    {
                        "token": f"token_id:{token}",
                        "logprob": float(logp[token]),
                        "top_logprobs": [
                            {"token": f"token_id:{i}", "logprob": float(v)}
                            for v, i in zip(values.tolist(), top.tolist())
                        ],
                    }
                )
            choice["logprobs"] = {"content": content}
        return {
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "model": self.name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": ids.shape[1],
                "completion_tokens": len(new),
                "total_tokens": ids.shape[1] + len(new),
            },
        }

    def __enter__(self) -> LogprobServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": server.name, "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                self._send(200, server.complete(body))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
