// tests/browser/driver.mjs - one headless chromium (Debian's, through
// puppeteer-core over the DevTools protocol) with a fake microphone, driven
// by the Python tests through JSON lines on stdin/stdout.
//
//   node driver.mjs --chromium /usr/bin/chromium --wav speech.wav --profile DIR [--deny-mic yes]
//   -> {"id":1,"cmd":"goto","url":"http://127.0.0.1:N/"}
//   <- {"id":1,"ok":true,"value":...}  or  {"id":1,"ok":false,"error":"..."}
//
// Commands: goto(url), eval(js) (an expression, awaited, JSON result),
// wait(js, timeout_ms) (until the expression is truthy; its value),
// click(selector), type(selector, text), press(key), viewport(width,
// height), keydown(key) / keyup(key), screenshot(path), axe() (axe-core's
// violations), logs() (console, page errors, failed requests since the
// last call), reload(), quit().
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import readline from "node:readline";
import puppeteer from "puppeteer-core";

const require = createRequire(import.meta.url);
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) =>
  (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));

const browser = await puppeteer.launch({
  executablePath: args.chromium || "/usr/bin/chromium",
  headless: true,
  userDataDir: args.profile,
  args: [
    "--no-sandbox",
    // --deny-mic yes: the permission prompt is answered "block"
    args["deny-mic"] ? "--deny-permission-prompts" : "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    `--use-file-for-fake-audio-capture=${args.wav}`,
    "--autoplay-policy=no-user-gesture-required",
    "--no-first-run",
    "--disable-gpu",
  ],
});
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 800 });
const logs = [];
page.on("console", (m) => logs.push(`${m.type()}: ${m.text()}`));
page.on("pageerror", (e) => logs.push(`pageerror: ${e.message}`));
page.on("requestfailed", (r) => logs.push(`requestfailed: ${r.url()} ${r.failure()?.errorText}`));
page.on("response", (r) => { if (r.status() >= 400) logs.push(`http ${r.status()}: ${r.url()}`); });

const commands = {
  async goto({ url }) { await page.goto(url, { waitUntil: "load" }); return page.url(); },
  async reload() { await page.reload({ waitUntil: "load" }); return true; },
  async eval({ js }) { return page.evaluate(`(async () => (${js}))()`); },
  async wait({ js, timeout_ms }) {
    const h = await page.waitForFunction(js, { timeout: timeout_ms || 30000, polling: 100 });
    return h.jsonValue();
  },
  async click({ selector }) { await page.click(selector); return true; },
  async type({ selector, text }) { await page.type(selector, text); return true; },
  async press({ key }) { await page.keyboard.press(key); return true; },
  async keydown({ key }) { await page.keyboard.down(key); return true; },
  async keyup({ key }) { await page.keyboard.up(key); return true; },
  async viewport({ width, height }) { await page.setViewport({ width, height }); return true; },
  async screenshot({ path }) { await page.screenshot({ path, type: "png" }); return path; },
  async logs() { return logs.splice(0); },
  async axe() {
    await page.addScriptTag({ content: readFileSync(require.resolve("axe-core/axe.min.js"), "utf8") });
    return page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ["violations"] });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => n.target.join(" ") + " : " + n.failureSummary).slice(0, 5) }));
    });
  },
  async quit() { setTimeout(async () => { await browser.close(); process.exit(0); }, 0); return true; },
};

const rl = readline.createInterface({ input: process.stdin });
const reply = (o) => process.stdout.write(JSON.stringify(o) + "\n");
reply({ id: 0, ok: true, value: await browser.version() });
rl.on("line", async (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch (e) { return; }
  try {
    const fn = commands[msg.cmd];
    if (!fn) throw new Error("unknown command " + msg.cmd);
    reply({ id: msg.id, ok: true, value: (await fn(msg)) ?? null });
  } catch (e) {
    reply({ id: msg.id, ok: false, error: String(e && e.stack || e), logs: logs.slice(-30) });
  }
});
rl.on("close", async () => { await browser.close(); process.exit(0); });
