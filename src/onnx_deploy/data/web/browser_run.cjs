// Drive the page that `onnx-deploy web` writes, in a real headless Chromium (Debian's),
// with playwright-core. argv: URL, request.json ({"feeds": {...}}, {"draw": [...]} or
// {"image": {"data", "height", "width"}} for a detector),
// result.json, screenshot.png, chromium path. Writes {"outputs", "backend", "version",
// "log"} to result.json.
"use strict";
const fs = require("fs");
const { chromium } = require("playwright-core");

(async () => {
  const [url, requestPath, resultPath, screenshot, executablePath] = process.argv.slice(2);
  const request = JSON.parse(fs.readFileSync(requestPath, "utf8"));
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const log = [];
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 640 } });
    page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
    await page.goto(url);
    await page.waitForFunction(() => window.onnxDeploy && window.onnxDeploy.state !== "loading", null, { timeout: 60000 });
    const state = await page.evaluate(() => window.onnxDeploy.state);
    if (state !== "ready") throw new Error(`the page did not load the model: ${state}`);
    let outputs;
    if (request.image) {
      outputs = await page.evaluate((r) => window.onnxDeploy.detectImage(r.data, r.height, r.width), request.image);
    } else if (request.draw) {
      outputs = await page.evaluate((pixels) => window.onnxDeploy.drawAndRun(pixels), request.draw);
    } else {
      outputs = await page.evaluate((feeds) => window.onnxDeploy.run(feeds), request.feeds);
    }
    await page.waitForTimeout(200);
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    const info = await page.evaluate(() => ({
      backend: window.onnxDeploy.backend,
      version: window.onnxDeploy.version,
      predictions: Array.from(document.querySelectorAll("#prediction"), (e) => e.textContent),
    }));
    fs.writeFileSync(resultPath, JSON.stringify({ outputs, ...info, log }));
  } catch (e) {
    fs.writeFileSync(resultPath, JSON.stringify({ error: String(e && e.message ? e.message : e), log }));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();
