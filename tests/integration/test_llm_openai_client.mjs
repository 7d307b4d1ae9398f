// Drives voxline-llm's /v1/chat/completions with the official `openai` npm
// client, as an application would. Usage:
//   node test_llm_openai_client.mjs <base url> <api key>
// Prints one JSON object per line: {"case":..., ...what the client saw}.
// test_llm.py runs it and checks every line; any exception exits 1.
import OpenAI from "openai";

const base = process.argv[2];
const apiKey = process.argv[3] || "unused";
const client = new OpenAI({ baseURL: base + "/v1", apiKey, maxRetries: 0, timeout: 20000 });
const messages = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "hello from node" },
];
const out = (o) => console.log(JSON.stringify(o));

// Not streamed.
const r = await client.chat.completions.create({ model: "reasoner", messages, max_tokens: 50 });
out({
  case: "create", id: r.id, object: r.object, model: r.model, created: r.created,
  content: r.choices[0].message.content, role: r.choices[0].message.role,
  reasoning: r.choices[0].message.reasoning_content ?? null,
  finish: r.choices[0].finish_reason, usage: r.usage,
});

// Streamed, with the usage chunk.
const stream = await client.chat.completions.create({
  model: "reasoner", messages, stream: true, stream_options: { include_usage: true },
});
let content = "", reasoning = "", finish = null, usage = null, chunks = 0, firstRole = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  const c = chunk.choices[0];
  if (!c) continue;
  if (firstRole === null) firstRole = c.delta.role ?? "";
  content += c.delta.content ?? "";
  reasoning += c.delta.reasoning_content ?? "";
  if (c.finish_reason) finish = c.finish_reason;
}
out({ case: "stream", content, reasoning, finish, usage, chunks, firstRole });

// The stream helper that accumulates the final message.
const runner = client.chat.completions.stream({ model: "splitutf8", messages });
const final = await runner.finalChatCompletion();
out({ case: "stream_helper", content: final.choices[0].message.content });

// Errors come back as APIError with the status and the OpenAI error shape.
for (const model of ["missing", "error500"]) {
  try {
    await client.chat.completions.create({ model, messages });
    out({ case: "error_" + model, status: 200 });
  } catch (e) {
    out({ case: "error_" + model, status: e.status, type: e.type ?? null,
          code: e.code ?? null, message: e.message });
  }
}

const models = await client.models.list();
const ids = [];
for await (const m of models) ids.push(m.id);
out({ case: "models", ids });
