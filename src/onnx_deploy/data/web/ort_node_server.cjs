// onnxruntime-node behind a line protocol, for onnx_deploy.infer.runners.node.NodeRunner.
// argv[2]: the model. stdin: one JSON object per line, {name: {dtype, dims, data (base64)}};
// stdout: {"outputs": {name: {dtype, dims, data}}} or {"error": "..."} per line.
"use strict";
const ort = require("onnxruntime-node");
const readline = require("readline");

const ARRAYS = {
  float32: Float32Array, float64: Float64Array, float16: Uint16Array, int64: BigInt64Array,
  int32: Int32Array, int16: Int16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
};

function toTensor(t) {
  const bytes = Buffer.from(t.data, "base64");
  const aligned = new ArrayBuffer(bytes.length); // typed arrays need aligned memory
  new Uint8Array(aligned).set(bytes);
  const Arr = ARRAYS[t.dtype];
  if (!Arr) throw new Error(`unsupported dtype ${t.dtype}`);
  return new ort.Tensor(t.dtype, new Arr(aligned), t.dims);
}

function fromTensor(v) {
  const data = Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  return { dtype: v.type, dims: v.dims, data: data.toString("base64") };
}

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

(async () => {
  const session = await ort.InferenceSession.create(process.argv[2], { executionProviders: ["cpu"] });
  const version = require("onnxruntime-node/package.json").version;
  reply({ ready: true, version, inputs: session.inputNames, outputs: session.outputNames });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    try {
      const request = JSON.parse(line);
      const feeds = {};
      for (const [name, t] of Object.entries(request)) feeds[name] = toTensor(t);
      const out = await session.run(feeds);
      const outputs = {};
      for (const [name, v] of Object.entries(out)) outputs[name] = fromTensor(v);
      reply({ outputs });
    } catch (e) {
      reply({ error: String(e && e.message ? e.message : e) });
    }
  }
})().catch((e) => {
  reply({ error: String(e && e.message ? e.message : e) });
  process.exit(1);
});
