// The page `onnx-deploy web` writes: loads model.onnx with onnxruntime-web (WebAssembly, no
// network at run time) and runs it on inputs built from signature.json. window.onnxDeploy
// is the page's API for tests: state, run(feeds), drawAndRun(pixels), and for a detector
// detectImage(rgb, height, width) with the boxes it drew in api.boxes.
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
    const detector = sig.answer && sig.answer.kind === "detections";
    if (detector) {
      // a photo canvas: an image file (or a test's pixels) in, the model's boxes drawn on it
      const photo = document.createElement("canvas");
      photo.id = "photo";
      photo.width = img.width;
      photo.height = img.height;
      photo.className = "photo";
      photo.style.display = "none"; // the model's pixels; what it drew is on "view"
      const view = document.createElement("canvas");
      view.id = "detections";
      view.className = "photo";
      const pctx = photo.getContext("2d", { willReadFrequently: true });
      pctx.fillStyle = "#333"; pctx.fillRect(0, 0, img.width, img.height);
      const COLOURS = ["#22c55e", "#3b82f6", "#f97316", "#e11d48", "#a855f7", "#eab308"];
      const detections = (result) => { // the first num_detections of each padded output
        const n = Number(result.num_detections.data[0]);
        const out = [];
        for (let i = 0; i < n; i++) {
          const b = result.boxes.data.slice(4 * i, 4 * i + 4).map(Number);
          out.push({ x1: b[0], y1: b[1], x2: b[2], y2: b[3], score: Number(result.scores.data[i]), cls: Number(result.classes.data[i]) });
        }
        return out;
      };
      api.detectImage = async (rgb, h, w) => { // uint8 RGB rows, h x w: drawn, read back, run
        photo.width = w; photo.height = h;
        const image = pctx.createImageData(w, h);
        for (let i = 0; i < h * w; i++) {
          image.data[4 * i] = rgb[3 * i]; image.data[4 * i + 1] = rgb[3 * i + 1];
          image.data[4 * i + 2] = rgb[3 * i + 2]; image.data[4 * i + 3] = 255;
        }
        pctx.putImageData(image, 0, 0);
        return runPhoto();
      };
      const runPhoto = async () => {
        const { width: w, height: h } = photo;
        const rgba = pctx.getImageData(0, 0, w, h).data;
        const pixels = [];
        for (let i = 0; i < rgba.length; i += 4) pixels.push(rgba[i], rgba[i + 1], rgba[i + 2]);
        const feeds = { [img.input]: { dtype: "uint8", dims: [1, h, w, 3], data: pixels } };
        const outputs = await api.run(feeds);
        const boxes = detections(outputs);
        // the boxes go on a display canvas about 360 px wide: the image scaled up without
        // smoothing (the pixels the model saw), lines and labels at screen resolution
        const sc = 360 / Math.max(w, h);
        view.width = Math.round(w * sc); view.height = Math.round(h * sc);
        const vctx = view.getContext("2d");
        vctx.imageSmoothingEnabled = false;
        vctx.drawImage(photo, 0, 0, view.width, view.height);
        vctx.font = "12px sans-serif";
        for (const d of boxes) { // every box drawn; solid and labelled from a score of 0.5
          const colour = COLOURS[d.cls % COLOURS.length];
          const sure = d.score >= 0.5;
          vctx.strokeStyle = colour; vctx.fillStyle = colour;
          vctx.lineWidth = sure ? 2 : 1;
          vctx.setLineDash(sure ? [] : [4, 3]);
          vctx.strokeRect(d.x1 * sc, d.y1 * sc, (d.x2 - d.x1) * sc, (d.y2 - d.y1) * sc);
          if (sure) {
            const name = sig.labels ? sig.labels[d.cls] : d.cls;
            vctx.fillText(`${name} ${d.score.toFixed(2)}`, d.x1 * sc + 2, Math.max(12, d.y1 * sc - 3));
          }
        }
        vctx.setLineDash([]);
        api.boxes = boxes;
        const p = document.createElement("div");
        p.id = "prediction";
        p.textContent = `${boxes.length} detection${boxes.length === 1 ? "" : "s"}`;
        $("result").prepend(p);
        return { outputs, pixels, feeds, boxes };
      };
      const file = document.createElement("input");
      file.type = "file"; file.accept = "image/*";
      file.onchange = async () => {
        const bitmap = await createImageBitmap(file.files[0]);
        photo.width = bitmap.width; photo.height = bitmap.height;
        pctx.drawImage(bitmap, 0, 0);
        runPhoto();
      };
      const note = document.createElement("div");
      note.className = "meta";
      note.textContent = `Any image size: the graph letterboxes it to ${img.width}x${img.height} and maps the boxes back.`;
      inputsDiv.append(photo, view, document.createElement("br"), file, note);
    } else if (img) {
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
      if (a && a.kind !== "detections") {
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
