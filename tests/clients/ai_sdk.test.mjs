// The Vercel AI SDK against Tether: `openai(modelId)` from @ai-sdk/openai speaks the Responses
// API. Each test scripts the fake model and checks what the AI SDK returned and what the model
// was sent; `sent` records the AI SDK's own requests to Tether, to pin down which input shape a
// test exercises.
import assert from "node:assert/strict";
import { test } from "node:test";

import { createOpenAI } from "@ai-sdk/openai";
import { Output, generateObject, generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

import { TETHER_URL, received, script, transcript, uniqueModel } from "./fake.mjs";

const sent = []; // [model, JSON body] of every request the AI SDK made to /v1/responses
const openai = createOpenAI({
  baseURL: `${TETHER_URL}/v1`,
  apiKey: "sk-test",
  fetch: async (url, init) => {
    if (String(url).endsWith("/responses") && typeof init?.body === "string") {
      const body = JSON.parse(init.body);
      sent.push([body.model, body]);
    }
    return fetch(url, init);
  },
});
const sentFor = (model) => sent.filter(([m]) => m === model).map(([, body]) => body);
const settings = { maxRetries: 0 };

test("generateText multi-turn with previousResponseId", async () => {
  const model = uniqueModel("ai-thread");
  await script(model);
  const first = await generateText({ ...settings, model: openai(model), prompt: "My name is Ada." });
  const second = await generateText({
    ...settings,
    model: openai(model),
    prompt: "What is my name?",
    providerOptions: { openai: { previousResponseId: first.providerMetadata.openai.responseId } },
  });

  assert.equal(first.text, "reply to: My name is Ada.");
  assert.equal(second.text, "reply to: What is my name?");
  const [, secondCall] = await received(model);
  assert.deepEqual(transcript(secondCall), [
    ["user", "My name is Ada."],
    ["assistant", "reply to: My name is Ada."],
    ["user", "What is my name?"],
  ]);
});

test("generateText multi-turn re-sending the messages (the AI SDK's default)", async () => {
  const model = uniqueModel("ai-messages");
  await script(model);
  const opening = [{ role: "user", content: "My name is Ada." }];
  const first = await generateText({ ...settings, model: openai(model), messages: opening });
  const second = await generateText({
    ...settings,
    model: openai(model),
    messages: [...opening, ...first.response.messages, { role: "user", content: "What is my name?" }],
  });

  // With store on (the default) the AI SDK refers to its earlier output by id.
  const [, secondBody] = sentFor(model);
  assert.ok(
    secondBody.input.some((item) => item.type === "item_reference"),
    `expected an item_reference in ${JSON.stringify(secondBody.input)}`,
  );
  assert.equal(second.text, "reply to: What is my name?");
  const [, secondCall] = await received(model);
  assert.deepEqual(transcript(secondCall), [
    ["user", "My name is Ada."],
    ["assistant", "reply to: My name is Ada."],
    ["user", "What is my name?"],
  ]);
});

test("a tool round trip in the AI SDK's tool loop", async () => {
  const model = uniqueModel("ai-tool");
  await script(model, {
    tool_calls: [{ name: "get_weather", arguments: '{"city":"Oslo"}' }],
    tool_calls_times: 1,
    reply: "It is sunny in Oslo.",
  });
  const asked = [];
  const result = await generateText({
    ...settings,
    model: openai(model),
    prompt: "Weather in Oslo?",
    tools: {
      get_weather: tool({
        description: "The weather in a city.",
        inputSchema: z.object({ city: z.string() }),
        execute: async ({ city }) => {
          asked.push(city);
          return `sunny in ${city}`;
        },
      }),
    },
    stopWhen: stepCountIs(3),
  });

  assert.deepEqual(asked, ["Oslo"]);
  assert.equal(result.text, "It is sunny in Oslo.");
  assert.equal(result.steps.length, 2);
  const [firstCall, secondCall] = await received(model);
  assert.equal(firstCall.tools[0].function.name, "get_weather");
  const [user, assistant, toolMessage] = secondCall.messages;
  assert.deepEqual([user.role, assistant.role, toolMessage.role], ["user", "assistant", "tool"]);
  const [call] = assistant.tool_calls;
  assert.equal(call.function.name, "get_weather");
  assert.deepEqual(JSON.parse(call.function.arguments), { city: "Oslo" });
  assert.equal(toolMessage.tool_call_id, call.id);
  assert.match(toolMessage.content, /sunny in Oslo/);
});

test("streamText", async () => {
  const model = uniqueModel("ai-stream");
  await script(model, { reply: "Streams arrive word by word." });
  const result = streamText({ ...settings, model: openai(model), prompt: "Stream something." });
  const chunks = [];
  for await (const chunk of result.textStream) chunks.push(chunk);

  assert.ok(chunks.length > 1, `the text should come in several chunks: ${chunks}`);
  assert.equal(chunks.join(""), "Streams arrive word by word.");
  assert.equal(await result.text, "Streams arrive word by word.");
  assert.equal(await result.finishReason, "stop");
  const [call] = await received(model);
  assert.equal(call.stream, true);
});

const Weather = z.object({ city: z.string(), celsius: z.number() });

test("structured output: generateText with Output.object", async () => {
  const model = uniqueModel("ai-output");
  await script(model, { reply: '{"city":"Oslo","celsius":21}' });
  const result = await generateText({
    ...settings,
    model: openai(model),
    prompt: "Weather in Oslo, as JSON.",
    output: Output.object({ schema: Weather }),
  });

  assert.deepEqual(result.output, { city: "Oslo", celsius: 21 });
  const [call] = await received(model);
  assert.equal(call.response_format.type, "json_schema");
  assert.deepEqual(call.response_format.json_schema.schema.required, ["city", "celsius"]);
});

test("structured output: generateObject", async () => {
  const model = uniqueModel("ai-object");
  await script(model, { reply: '{"city":"Oslo","celsius":21}' });
  const result = await generateObject({
    ...settings,
    model: openai(model),
    prompt: "Weather in Oslo, as JSON.",
    schema: Weather,
    schemaName: "weather",
  });

  assert.deepEqual(result.object, { city: "Oslo", celsius: 21 });
  const [call] = await received(model);
  assert.equal(call.response_format.type, "json_schema");
  assert.equal(call.response_format.json_schema.name, "weather");
});
