// The Node `openai` SDK against Tether: each test scripts the fake model, drives the SDK as an
// application would, and checks both what the SDK returned and what the model was sent.
import assert from "node:assert/strict";
import { test } from "node:test";

import OpenAI from "openai";
import { zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";

import { TETHER_URL, received, script, transcript, uniqueModel } from "./fake.mjs";

const client = new OpenAI({ baseURL: `${TETHER_URL}/v1`, apiKey: "sk-test", maxRetries: 0 });

test("multi-turn with previous_response_id", async () => {
  const model = uniqueModel("openai-thread");
  await script(model); // answers "reply to: <last user message>"
  const first = await client.responses.create({ model, input: "My name is Ada." });
  const second = await client.responses.create({
    model,
    input: "What is my name?",
    previous_response_id: first.id,
  });

  assert.equal(first.output_text, "reply to: My name is Ada.");
  assert.equal(second.output_text, "reply to: What is my name?");
  assert.equal(second.previous_response_id, first.id);
  const [, secondCall] = await received(model);
  assert.deepEqual(transcript(secondCall), [
    ["user", "My name is Ada."],
    ["assistant", "reply to: My name is Ada."],
    ["user", "What is my name?"],
  ]);
});

test("a function tool round trip", async () => {
  const model = uniqueModel("openai-tool");
  await script(model, {
    tool_calls: [{ name: "get_weather", arguments: '{"city":"Oslo"}' }],
    tool_calls_times: 1,
    reply: "It is sunny in Oslo.",
  });
  const tools = [
    {
      type: "function",
      name: "get_weather",
      description: "The weather in a city.",
      parameters: {
        type: "object",
        properties: { city: { type: "string" } },
        required: ["city"],
        additionalProperties: false,
      },
      strict: true,
    },
  ];
  const first = await client.responses.create({ model, input: "Weather in Oslo?", tools });
  const call = first.output.find((item) => item.type === "function_call");
  assert.ok(call, `no function_call in ${JSON.stringify(first.output)}`);
  assert.equal(call.name, "get_weather");
  assert.deepEqual(JSON.parse(call.arguments), { city: "Oslo" });

  const second = await client.responses.create({
    model,
    previous_response_id: first.id,
    input: [{ type: "function_call_output", call_id: call.call_id, output: "sunny, 21 C" }],
    tools,
  });

  assert.equal(second.output_text, "It is sunny in Oslo.");
  const [firstCall, secondCall] = await received(model);
  assert.equal(firstCall.tools[0].function.name, "get_weather");
  const [user, assistant, tool] = secondCall.messages;
  assert.equal(user.role, "user");
  assert.deepEqual(
    assistant.tool_calls.map((c) => [c.id, c.function.name, JSON.parse(c.function.arguments)]),
    [[call.call_id, "get_weather", { city: "Oslo" }]],
  );
  assert.deepEqual(
    [tool.role, tool.tool_call_id, tool.content],
    ["tool", call.call_id, "sunny, 21 C"],
  );
});

test("a stream: events in order, then the final text", async () => {
  const model = uniqueModel("openai-stream");
  await script(model, { reply: "Streams arrive word by word." });
  const stream = client.responses.stream({ model, input: "Stream something." });
  const events = [];
  for await (const event of stream) events.push(event);
  const final = await stream.finalResponse();

  assert.deepEqual(
    events.map((e) => e.sequence_number),
    events.map((_, n) => n),
  );
  const kinds = events.map((e) => e.type).filter((t, n, all) => t !== all[n - 1]);
  assert.deepEqual(kinds, [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
  ]);
  const deltas = events.filter((e) => e.type === "response.output_text.delta");
  assert.ok(deltas.length > 1, "the text should come in several deltas");
  assert.equal(deltas.map((e) => e.delta).join(""), "Streams arrive word by word.");
  assert.equal(final.output_text, "Streams arrive word by word.");
  assert.equal(final.status, "completed");
  const [call] = await received(model);
  assert.equal(call.stream, true);
});

test("structured output with a JSON schema", async () => {
  const model = uniqueModel("openai-json");
  await script(model, { reply: '{"city":"Oslo","celsius":21}' });
  const Weather = z.object({ city: z.string(), celsius: z.number() });
  const response = await client.responses.parse({
    model,
    input: "Weather in Oslo, as JSON.",
    text: { format: zodTextFormat(Weather, "weather") },
  });

  assert.deepEqual(response.output_parsed, { city: "Oslo", celsius: 21 });
  assert.deepEqual(JSON.parse(response.output_text), { city: "Oslo", celsius: 21 });
  const [call] = await received(model);
  assert.equal(call.response_format.type, "json_schema");
  assert.equal(call.response_format.json_schema.name, "weather");
  assert.equal(call.response_format.json_schema.strict, true);
  assert.deepEqual(call.response_format.json_schema.schema.required, ["city", "celsius"]);
});
