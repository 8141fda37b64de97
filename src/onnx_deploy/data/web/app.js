// The page `onnx-deploy web` writes: loads model.onnx with onnxruntime-web (WebAssembly, no
// network at run time) and runs it on inputs built from signature.json. window.onnxDeploy
// is the page's API for tests: state, run(feeds), drawAndRun(pixels).
"use strict";
(async () => {
  const api = { state: "loading", backend: "wasm", version: ort.env.versions ? ort.env.versions.web : "?" };
  window.onnxDeploy = api;
  const ARRAYS = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
                   int8: Int8Array, uint8: Uint8Array, bool: Uint8Array };
  const $ = (id) => document.getElementById(id);
  try {
    ort.env.wasm.wasmPaths = new URL("ort/", window.location.href).href; // beside the page
    ort.env.wasm.numThreads = 1; // threads need cross-origin isolation headers
    const sig = await (await fetch("signature.json")).json();
    const session = await ort.InferenceSession.create(sig.model, { executionProviders: ["wasm"] });
    api.signature = sig;

    const toTensor = (t) => {
      const Arr = ARRAYS[t.dtype];
      const data = t.dtype === "int64" ? BigInt64Array.from(t.data.map((v) => BigInt(v))) : Arr.from(t.data);
      return new ort.Tensor(t.dtype, data, t.dims);
    };
    const fromTensor = (v) => ({ dtype: v.type, dims: v.dims, data: Array.from(v.data, (x) => (typeof x === "bigint" ? Number(x) : x)) });
    api.run = async (feeds) => {
      const tensors = {};
      for (const [name, t] of Object.entries(feeds)) tensors[name] = toTensor(t);
      const out = await session.run(tensors);
      const result = {};
      for (const [name, v] of Object.entries(out)) result[name] = fromTensor(v);
      show(result);
      return result;
    };

    const img = sig.image;
    const inputsDiv = $("inputs");
    if (img) {
      // a drawing canvas (white ink on black), read back at the model's height x width
      const draw = document.createElement("canvas");
      draw.width = draw.height = 280;
      draw.className = "draw";
      const preview = document.createElement("canvas");
      preview.width = img.width;
      preview.height = img.height;
      preview.className = "preview";
      const ctx = draw.getContext("2d");
      const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, 280, 280); };
      clear();
      let down = false;
      const at = (e) => { const r = draw.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
      draw.addEventListener("pointerdown", (e) => { down = true; ctx.beginPath(); ctx.moveTo(...at(e)); });
      draw.addEventListener("pointermove", (e) => {
        if (!down) return;
        ctx.lineWidth = 26; ctx.lineCap = "round"; ctx.strokeStyle = "#fff";
        ctx.lineTo(...at(e)); ctx.stroke();
      });
      window.addEventListener("pointerup", () => { if (down) { down = false; runCanvas(); } });
      const pixelsFromCanvas = () => {
        const p = preview.getContext("2d");
        p.imageSmoothingEnabled = true;
        p.imageSmoothingQuality = "high";
        p.drawImage(draw, 0, 0, img.width, img.height);
        const rgba = p.getImageData(0, 0, img.width, img.height).data;
        const gray = [];
        for (let i = 0; i < rgba.length; i += 4) gray.push(Math.round((rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3));
        return gray;
      };
      const feedsFromPixels = (gray) => {
        const { height: h, width: w, channels: c } = img;
        const data = [];
        if (img.dtype === "uint8") { // preprocessing lives in the graph: raw pixels in
          for (let i = 0; i < h * w; i++) for (let k = 0; k < c; k++) data.push(gray[i]);
          const dims = img.layout === "NHWC" ? [1, h, w, c] : [1, c, h, w];
          if (img.layout !== "NHWC") { data.length = 0; for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) data.push(gray[i]); }
          return { [img.input]: { dtype: "uint8", dims, data } };
        }
        for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) data.push(gray[i] * img.scale); // in the page: x * scale
        return { [img.input]: { dtype: "float32", dims: [1, c, h, w], data } };
      };
      const runCanvas = async () => {
        const gray = pixelsFromCanvas();
        const feeds = feedsFromPixels(gray);
        const outputs = await api.run(feeds);
        return { outputs, pixels: gray, feeds };
      };
      api.drawAndRun = async (gray) => { // a grayscale height x width image, drawn as blocks
        clear();
        const sx = 280 / img.width, sy = 280 / img.height;
        for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) {
          const v = gray[y * img.width + x];
          ctx.fillStyle = `rgb(${v},${v},${v})`;
          ctx.fillRect(Math.floor(x * sx), Math.floor(y * sy), Math.ceil(sx), Math.ceil(sy));
        }
        return runCanvas();
      };
      const buttons = document.createElement("div");
      for (const [label, fn] of [["Run", runCanvas], ["Clear", () => { clear(); $("result").innerHTML = ""; }]]) {
        const b = document.createElement("button"); b.textContent = label; b.onclick = fn; buttons.appendChild(b);
      }
      const note = document.createElement("div");
      note.className = "meta";
      note.textContent = `Draw, then release. The model sees ${img.width}x${img.height}: `;
      note.appendChild(preview);
      inputsDiv.append(draw, buttons, note);
    } else {
      const b = document.createElement("button");
      b.textContent = "Run on random inputs";
      b.onclick = () => api.run(randomFeeds(sig.inputs));
      inputsDiv.appendChild(b);
    }

    function randomFeeds(inputs) {
      const feeds = {};
      for (const s of inputs) {
        const dims = s.shape.map((d) => (typeof d === "number" ? d : 1));
        const n = dims.reduce((a, b) => a * b, 1);
        const data = Array.from({ length: n }, () => (s.dtype.startsWith("float") ? Math.random() : Math.floor(Math.random() * 10)));
        feeds[s.name] = { dtype: s.dtype, dims, data };
      }
      return feeds;
    }

    function bars(div, probs, best) {
      const order = probs.map((x, i) => i).sort((a, b) => probs[b] - probs[a]).slice(0, 10);
      for (const i of order) {
        const row = document.createElement("div");
        row.className = i === best ? "best" : "";
        row.innerHTML = `<span class="label">${sig.labels ? sig.labels[i] : i}</span><span class="bar" style="width:${Math.round(200 * probs[i])}px"></span> ${probs[i].toFixed(3)}`;
        div.appendChild(row);
      }
    }

    // One answer per model, chosen in Python from the output names and the
    // postprocessing (signature.json's "answer"); every output is listed under it.
    function show(result) {
      const div = $("result");
      div.innerHTML = "";
      const a = sig.answer;
      if (a) {
        const p = document.createElement("div");
        p.id = "prediction";
        if (a.kind === "top-k") {
          const label = Number(result[a.labels].data[0]);
          const score = a.scores ? ` (p = ${Number(result[a.scores].data[0]).toFixed(3)})` : "";
          p.textContent = `${sig.labels ? sig.labels[label] : label}${score}`;
          div.appendChild(p);
        } else {
          const v = result[a.output];
          const row = Array.from(v.data.slice(0, v.dims[v.dims.length - 1]), Number);
          const max = Math.max(...row);
          const exp = row.map((x) => Math.exp(x - max));
          const sum = exp.reduce((s, e) => s + e, 0);
          const probs = a.kind === "probabilities" ? row : exp.map((e) => e / sum);
          const best = probs.indexOf(Math.max(...probs));
          p.textContent = `${sig.labels ? sig.labels[best] : best}  (p = ${probs[best].toFixed(3)})`;
          div.appendChild(p);
          bars(div, probs, best);
        }
      }
      for (const [name, v] of Object.entries(result)) {
        const h = document.createElement("div");
        h.className = "meta";
        h.textContent = `${name}: ${v.dtype}[${v.dims.join(", ")}]`;
        div.appendChild(h);
        const pre = document.createElement("pre");
        pre.textContent = JSON.stringify(Array.from(v.data.slice(0, 32), Number)) + (v.data.length > 32 ? " ..." : "");
        div.appendChild(pre);
      }
    }

    $("meta").textContent = `${sig.model} on onnxruntime-web ${api.version} (WebAssembly, on this device). ${sig.preprocessing}`;
    api.state = "ready";
  } catch (e) {
    api.state = `error: ${e && e.message ? e.message : e}`;
    $("meta").textContent = api.state;
  }
})();
