"""Drives `kernels::serve` with the official `openai` Python client: chat, streaming chat, completions, embeddings, models.

usage: python openai_client.py BASE_URL CHAT_MODEL EMBEDDING_MODEL   → JSON on stdout
"""

import json
import sys

from openai import OpenAI


def main() -> None:
    base, chat_model, embedding_model = sys.argv[1], sys.argv[2], sys.argv[3]
    client = OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0, timeout=120)
    question = [{"role": "user", "content": "What is the capital of France?"}]

    chat = client.chat.completions.create(model=chat_model, messages=question, temperature=0, max_tokens=32)
    chunks = list(
        client.chat.completions.create(
            model=chat_model,
            messages=question,
            temperature=0,
            max_tokens=32,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    stream_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage_chunks = [c.usage.model_dump() for c in chunks if c.usage is not None]

    completion = client.completions.create(model=chat_model, prompt="The capital of France is", temperature=0, max_tokens=8)

    emb = client.embeddings.create(model=embedding_model, input=["hello world", "The capital of France is Paris."])
    emb_float = client.embeddings.create(model=embedding_model, input="hello world", encoding_format="float")

    try:
        client.chat.completions.create(model="no-such-model", messages=question)
        missing = None
    except Exception as e:  # openai.NotFoundError
        missing = {"type": type(e).__name__, "status": getattr(e, "status_code", None)}

    json.dump(
        {
            "chat": chat.choices[0].message.content,
            "chat_finish": chat.choices[0].finish_reason,
            "chat_usage": chat.usage.model_dump(),
            "stream_text": stream_text,
            "stream_chunks": len(chunks),
            "stream_finish": finish,
            "stream_usage": usage_chunks,
            "completion": completion.choices[0].text,
            "embeddings": [d.embedding for d in emb.data],
            "embedding_float": emb_float.data[0].embedding,
            "models": sorted(m.id for m in client.models.list().data),
            "missing_model": missing,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
