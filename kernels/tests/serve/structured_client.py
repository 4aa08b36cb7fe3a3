"""Drives `kernels::serve`'s structured output, tools, log-probabilities and choices with the official `openai` client.

usage: python structured_client.py BASE_URL CHAT_MODEL   → JSON on stdout

Every answer is parsed by the client's own Pydantic types; schema-valid means Pydantic's `model_validate_json`
accepts it.
"""

import json
import sys
from typing import Literal

from openai import OpenAI
from pydantic import BaseModel, ConfigDict, Field


class WeatherArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    city: str
    unit: Literal["celsius", "fahrenheit"]


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": WeatherArgs.model_json_schema(),
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The local time in a time zone.",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "maxLength": 24}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}


class Person(BaseModel):
    name: str = Field(max_length=24)
    age: int = Field(ge=0, le=130)


class Colour(BaseModel):
    name: Literal["red", "green", "blue"]
    hex: str = Field(pattern=r"^#[0-9a-f]{6}$")


class Step(BaseModel):
    action: str = Field(max_length=30)
    done: bool


class Plan(BaseModel):
    goal: str = Field(max_length=40)
    steps: list[Step] = Field(min_length=1, max_length=3)


class Answer(BaseModel):
    answer: Literal["yes", "no"] | None
    confidence: float = Field(ge=0, le=1)


def tool_round_trip(client: OpenAI, model: str, stream: bool) -> dict:
    messages = [{"role": "user", "content": "What is the weather in Paris? Use a tool."}]
    tools = [WEATHER_TOOL, TIME_TOOL]
    choice = {"type": "function", "function": {"name": "get_weather"}}
    if stream:
        chunks = list(
            client.chat.completions.create(
                model=model, messages=messages, tools=tools, tool_choice=choice, temperature=0, max_tokens=64, stream=True
            )
        )
        calls: dict[int, dict] = {}
        for c in chunks:
            for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
                call = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                if d.id:
                    call["id"] = d.id
                if d.function and d.function.name:
                    call["name"] += d.function.name
                if d.function and d.function.arguments:
                    call["arguments"] += d.function.arguments
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        first = calls[0]
        assistant = {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": first["id"], "type": "function", "function": {"name": first["name"], "arguments": first["arguments"]}}],
        }
        call_id, name, arguments = first["id"], first["name"], first["arguments"]
    else:
        r = client.chat.completions.create(
            model=model, messages=messages, tools=tools, tool_choice=choice, temperature=0, max_tokens=64
        )
        message = r.choices[0].message
        finish = [r.choices[0].finish_reason]
        content = message.content
        call = message.tool_calls[0]
        assistant = message.model_dump(exclude_none=True)
        call_id, name, arguments = call.id, call.function.name, call.function.arguments
    args = WeatherArgs.model_validate_json(arguments)  # schema-valid or this raises
    messages += [assistant, {"role": "tool", "tool_call_id": call_id, "content": "18 degrees celsius and sunny"}]
    final = client.chat.completions.create(model=model, messages=messages, tools=tools, temperature=0, max_tokens=24)
    return {
        "finish": finish,
        "content": content,
        "id": call_id,
        "name": name,
        "arguments": args.model_dump(),
        "final_finish": final.choices[0].finish_reason,
        "final_content": final.choices[0].message.content,
        "final_calls": len(final.choices[0].message.tool_calls or []),
    }


def main() -> None:
    base, model = sys.argv[1], sys.argv[2]
    client = OpenAI(base_url=f"{base}/v1", api_key="not-needed", max_retries=0, timeout=300)
    out: dict = {}

    out["tools"] = tool_round_trip(client, model, stream=False)
    out["tools_stream"] = tool_round_trip(client, model, stream=True)
    required = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What time is it in Tokyo?"}],
        tools=[WEATHER_TOOL, TIME_TOOL],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=160,
    )
    out["required"] = {
        "finish": required.choices[0].finish_reason,
        "content": required.choices[0].message.content,
        "names": [c.function.name for c in required.choices[0].message.tool_calls or []],
        "arguments": [json.loads(c.function.arguments) for c in required.choices[0].message.tool_calls or []],
    }

    # The client's structured path: a Pydantic model in, a parsed Pydantic object out.
    parse = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
    parsed = {}
    for cls, question in [
        (Person, "Invent a person. Give their name and age."),
        (Colour, "Pick a colour and give its hex code."),
        (Plan, "Plan a short walk in a few steps."),
        (Answer, "Is the sky blue? Answer with your confidence."),
    ]:
        for temperature in [0, 1]:
            r = parse(model=model, messages=[{"role": "user", "content": question}], response_format=cls,
                      temperature=temperature, seed=7, max_tokens=160)
            p = r.choices[0].message.parsed
            parsed.setdefault(cls.__name__, []).append(
                {"type": type(p).__name__, "value": p.model_dump() if p is not None else None,
                 "finish": r.choices[0].finish_reason}
            )
    out["parsed"] = parsed

    obj = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": 'Give a JSON object with the keys "name" and "colour" of a cat.'}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=200,
    )
    out["json_object"] = {"content": obj.choices[0].message.content, "finish": obj.choices[0].finish_reason}

    # Log-probabilities, whole and streamed, and several choices in one stream.
    question = [{"role": "user", "content": "What is the capital of France?"}]
    whole = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=12,
                                           logprobs=True, top_logprobs=3)
    streamed = list(client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=12,
                                                   logprobs=True, top_logprobs=3, stream=True))
    out["logprobs"] = {
        "whole": [t.model_dump() for t in whole.choices[0].logprobs.content],
        "streamed": [t.model_dump() for c in streamed if c.choices and c.choices[0].logprobs
                     for t in c.choices[0].logprobs.content or []],
    }
    many = list(client.chat.completions.create(model=model, messages=question, temperature=1, seed=3, n=3,
                                               max_tokens=12, stream=True, stream_options={"include_usage": True}))
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for c in many:
        for ch in c.choices:
            texts[ch.index] = texts.get(ch.index, "") + (ch.delta.content or "")
            if ch.finish_reason:
                finishes[ch.index] = ch.finish_reason
    whole_many = client.chat.completions.create(model=model, messages=question, temperature=1, seed=3, n=3,
                                                max_tokens=12)
    out["n"] = {
        "streamed": [texts[i] for i in sorted(texts)],
        "finishes": [finishes[i] for i in sorted(finishes)],
        "whole": [c.message.content for c in whole_many.choices],
        "usage": [c.usage.model_dump() for c in many if c.usage is not None],
    }

    echo = client.completions.create(model=model, prompt="The capital of France is", max_tokens=0, echo=True,
                                     logprobs=2, temperature=0)
    out["echo"] = {"text": echo.choices[0].text, "logprobs": echo.choices[0].logprobs.model_dump()}

    # Completions' legacy log-probabilities, streamed (with the echoed prompt first) and whole.
    request = dict(model=model, prompt="The capital of France is", max_tokens=6, echo=True, logprobs=2, temperature=0)
    chunks = list(client.completions.create(stream=True, **request))
    whole_c = client.completions.create(**request)
    streamed: dict = {"tokens": [], "token_logprobs": [], "text_offset": []}
    for c in chunks:
        if c.choices and c.choices[0].logprobs:
            for key in streamed:
                streamed[key] += getattr(c.choices[0].logprobs, key) or []
    whole_lp = whole_c.choices[0].logprobs
    out["completion_stream"] = {
        "text": "".join(c.choices[0].text for c in chunks if c.choices),
        "whole_text": whole_c.choices[0].text,
        "streamed": streamed,
        "whole": {key: getattr(whole_lp, key) for key in streamed},
    }

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
