/**
 * The dashboard end to end in Debian's Chromium (driven by playwright-core) against the real
 * system: every shipped control, the real gateway worker on loopback, the real sandboxed job
 * runner, the islands bundle built as `secai start` builds it. One browser profile (a fresh
 * user-data dir) walks through first-run setup, every page, a policy edit refused by
 * validation, an audit verify, an import through quarantine with live stage progress,
 * logout, and the login lockout.
 *
 * Screenshots of each page go to `$SECAI_SCREENSHOTS` when set (`deno task screenshots`
 * writes `docs/screenshots/`), else to a temp dir.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import "./_playwright.ts"; // before playwright-core: see there
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { ensureIslandBundle } from "../runtime/bundle.ts";
import { DEFAULT_CONTROLS } from "../runtime/manifest.ts";
import { PROJECT_ROOT } from "./_system.ts";
import { TEST_PASSPHRASE } from "./_auth.ts";
import { type PipelineSystem, startPipeline, writeBigSafetensors } from "./quarantine/_system.ts";

/** Chromium as Debian ships it (tools/setup installs it). */
const CHROMIUM = "/usr/bin/chromium";
/** DENO_NOTES §4: headless, no sandbox (containers), nothing phoning home. */
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
const TIMEOUT_MS = 30_000;

interface Browser {
  context: BrowserContext;
  page: Page;
  /** Console errors and page errors other than failed requests (CSP violations show here). */
  errors: string[];
  close(): Promise<void>;
}

async function openBrowser(options: { isJavaScriptEnabled?: boolean } = {}): Promise<Browser> {
  const profile = await Deno.makeTempDir({ prefix: "secai-chromium-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    javaScriptEnabled: options.isJavaScriptEnabled ?? true,
    viewport: { width: 1280, height: 900 },
  });
  context.setDefaultTimeout(TIMEOUT_MS);
  const page = context.pages()[0] ?? await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    // A 401/423 answer is logged by Chromium as a failed resource; that is the test's point.
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) {
      errors.push(`console: ${msg.text()}`);
    }
  });
  return {
    context,
    page,
    errors,
    async close() {
      await context.close();
      await Deno.remove(profile, { recursive: true });
    },
  };
}

async function screenshotDir(): Promise<{ dir: string; isTemp: boolean }> {
  const wanted = Deno.env.get("SECAI_SCREENSHOTS");
  if (wanted) {
    const dir = wanted.startsWith("/") ? wanted : `${PROJECT_ROOT}/${wanted}`;
    await Deno.mkdir(dir, { recursive: true });
    return { dir, isTemp: false };
  }
  return { dir: await Deno.makeTempDir({ prefix: "secai-shots-" }), isTemp: true };
}

async function gatewayBase(sys: PipelineSystem): Promise<string> {
  const addr = await sys.supervisor.gatewayAddress(10_000);
  if (addr.transport !== "tcp") throw new TypeError("Expected a TCP gateway");
  return `http://127.0.0.1:${addr.port}`;
}

async function heading(page: Page): Promise<string> {
  return ((await page.locator("main h1").first().textContent()) ?? "").trim();
}

Deno.test({
  name: "the dashboard works end to end in Chromium",
  // Chromium's helper processes and the system's workers outlive single steps by design.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await ensureIslandBundle({ projectRoot: PROJECT_ROOT, denoPath: Deno.execPath() });
    const sys = await startPipeline({ controls: DEFAULT_CONTROLS });
    const shots = await screenshotDir();
    const browser = await openBrowser();
    const { page } = browser;
    const base = await gatewayBase(sys);
    const shot = (name: string) =>
      page.screenshot({ path: `${shots.dir}/${name}.png`, fullPage: true });
    try {
      await t.step(
        "first run asks for the setup code and a passphrase, then shows the Overview",
        async () => {
          await page.goto(`${base}/`);
          equal(new URL(page.url()).pathname, "/setup");
          equal(await heading(page), "Set up SecAI Runtime");
          await shot("setup");
          const code = (await Deno.readTextFile(`${sys.home}/auth/setup-code`)).trim();
          await page.fill("#auth-setupCode", code);
          await page.fill("#auth-passphrase", TEST_PASSPHRASE);
          await page.fill("#auth-confirm", `${TEST_PASSPHRASE}!`);
          await page.click("button[type=submit]");
          match(await page.locator("#auth-confirm-error").textContent() ?? "", /differ/);
          equal(await page.getAttribute("#auth-confirm", "aria-invalid"), "true");
          await page.fill("#auth-confirm", TEST_PASSPHRASE);
          await Promise.all([
            page.waitForURL(`${base}/`),
            page.click("button[type=submit]"),
          ]);
          equal(await heading(page), "Overview");
          // The island hydrated and follows the event stream.
          await page.locator(".live-controls .link", { hasText: "Live:" }).waitFor();
          ok(await page.locator("#control-auth").isVisible(), "the capability matrix lists auth");
          await shot("overview");
        },
      );

      await t.step("every page is reachable from the navigation", async () => {
        const expected: [string, string, string][] = [
          ["Models", "/models", "Models"],
          ["Policy", "/policy", "Policy"],
          ["Audit", "/audit", "Audit log"],
          ["Incidents", "/incidents", "Incidents"],
          ["Settings", "/settings", "Settings"],
          ["Overview", "/", "Overview"],
        ];
        for (const [link, path, title] of expected) {
          await Promise.all([
            page.waitForURL(`${base}${path}`),
            page.click(`nav[aria-label=Main] >> text=${link}`),
          ]);
          equal(await heading(page), title, path);
          equal(
            await page.getAttribute(`nav[aria-label=Main] >> text=${link}`, "aria-current"),
            "page",
          );
          if (path !== "/") await shot(path.slice(1));
          if (path === "/incidents") {
            ok(
              await page.locator(".not-available", { hasText: "Incident recording" }).isVisible(),
              "a page without its control says so",
            );
          }
        }
      });

      await t.step("the keyboard reaches the skip link first and focus is visible", async () => {
        await page.goto(`${base}/audit`);
        await page.keyboard.press("Tab");
        equal(await page.evaluate(() => document.activeElement?.textContent), "Skip to content");
        const outline = await page.evaluate(() =>
          getComputedStyle(document.activeElement as Element).outlineStyle
        );
        equal(outline, "solid");
      });

      await t.step("a policy edit refused by validation shows the reason inline", async () => {
        await page.goto(`${base}/policy`);
        await page.locator("#policy-text").waitFor();
        const text = await page.inputValue("#policy-text");
        match(text, /runtime_egress: deny/);
        await page.fill(
          "#policy-text",
          text.replace("runtime_egress: deny", "runtime_egress: allow"),
        );
        await page.click("text=Validate and preview changes");
        const error = page.locator("#policy-text-error");
        await error.waitFor();
        match(await error.textContent() ?? "", /runtime_egress/);
        equal(await page.getAttribute("#policy-text", "aria-invalid"), "true");
        ok(await page.locator("button", { hasText: "Apply" }).isDisabled());
        await shot("policy-invalid");
        await page.fill("#policy-text", text);
        await page.click("text=Validate and preview changes");
        await page.locator(".whatif", { hasText: "Valid." }).waitFor();
        equal(await page.locator("#policy-text-error").count(), 0);
      });

      await t.step(
        "an audit verify reports the log intact and an entry shows its proof",
        async () => {
          await page.goto(`${base}/audit?type=auth.setup`);
          const rows = page.locator("table.audit-table tbody tr");
          equal(await rows.count(), 1, "the setup was audited");
          await page.click("text=Verify the whole log now");
          await page.locator(".verify-result", { hasText: "Intact." }).waitFor();
          await shot("audit-verify");
          await Promise.all([page.waitForURL(/\/audit\/\d+$/), rows.first().locator("a").click()]);
          match(await heading(page), /^Audit entry \d+$/);
          await page.locator("h3", { hasText: "Audit path" }).waitFor();
          await shot("audit-entry");
        },
      );

      await t.step("an import goes through quarantine with live stage progress", async () => {
        const dir = await Deno.makeTempDir({ prefix: "secai-e2e-model-" });
        try {
          const file = `${dir}/tiny-e2e.safetensors`;
          await writeBigSafetensors(file, 8);
          await page.goto(`${base}/models`);
          // Record every stage and state the page shows while the job runs.
          await page.evaluate(() => {
            const seen = new Set<string>();
            (globalThis as unknown as { seen: Set<string> }).seen = seen;
            new MutationObserver(() => {
              for (const el of document.querySelectorAll(".job [class*=stage-], .job-state")) {
                seen.add(`${el.className}|${el.textContent}`);
              }
            }).observe(document.body, { subtree: true, childList: true, attributes: true });
          });
          await page.setInputFiles("#model-file", file);
          await page.click("text=Import into quarantine");
          const job = page.locator("li.job", { hasText: "tiny-e2e.safetensors" });
          await job.waitFor();
          await job.locator(".job-state", { hasText: "promoted" }).waitFor({ timeout: 60_000 });
          const seen: string[] = await page.evaluate(
            () => [...(globalThis as unknown as { seen: Set<string> }).seen],
          );
          ok(seen.some((s) => s.includes("stage-running")), `a running stage was shown: ${seen}`);
          ok(seen.some((s) => /stage-pass.*format gate/.test(s)), `format gate passed: ${seen}`);
          ok(
            seen.some((s) => /job-state.*running/.test(s)),
            `the running state was shown: ${seen}`,
          );
          const model = page.locator("tr[data-model]", { hasText: "tiny-e2e" });
          await model.waitFor();
          await shot("models");
          await model.locator("text=Revoke…").click();
          await model.locator("input").fill("e2e test: no longer needed");
          await model.locator("text=Revoke for good").click();
          await page.locator("text=was revoked").waitFor();
          equal(await page.locator("tr[data-model]", { hasText: "tiny-e2e" }).count(), 0);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      });

      await t.step("logout ends the session and pages ask for the passphrase again", async () => {
        await page.goto(`${base}/settings`);
        await Promise.all([page.waitForURL(`${base}/login`), page.click("text=Log out")]);
        await page.goto(`${base}/audit`);
        equal(new URL(page.url()).pathname, "/login");
        equal(new URL(page.url()).searchParams.get("next"), "/audit");
        await shot("login");
      });

      await t.step("five wrong passphrases lock the login, and the lock is shown", async () => {
        await page.goto(`${base}/login`);
        for (let i = 1; i <= 5; i++) {
          await page.fill("#auth-passphrase", `wrong guess number ${i}`);
          await page.click("button[type=submit]");
          await page.locator("#auth-passphrase-error").waitFor();
          await page.locator("button[type=submit]:not([disabled])").waitFor();
        }
        match(await page.locator("#auth-passphrase-error").textContent() ?? "", /Try again after/);
        await page.fill("#auth-passphrase", TEST_PASSPHRASE);
        await page.click("button[type=submit]");
        const alert = page.locator(".form-error[role=alert]");
        await alert.waitFor();
        match(await alert.textContent() ?? "", /Too many failed attempts/);
        equal(new URL(page.url()).pathname, "/login", "the right passphrase waits out the lock");
        await shot("login-locked");
      });

      await t.step("no page broke the CSP or threw", () => {
        deepEqual(browser.errors, []);
      });
    } finally {
      await browser.close();
      await sys.stop();
      if (shots.isTemp) await Deno.remove(shots.dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "pages paint their content without JavaScript",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const sys = await startPipeline({ controls: DEFAULT_CONTROLS });
    const browser = await openBrowser({ isJavaScriptEnabled: false });
    try {
      const base = await gatewayBase(sys);
      const code = (await Deno.readTextFile(`${sys.home}/auth/setup-code`)).trim();
      const res = await fetch(`${base}/api/v1/auth/setup`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: base },
        body: JSON.stringify({ setupCode: code, passphrase: TEST_PASSPHRASE }),
      });
      equal(res.status, 200);
      await res.body?.cancel();
      const url = new URL(base);
      await browser.context.addCookies(
        res.headers.getSetCookie().map((c) => {
          const [pair = ""] = c.split(";");
          const [name = "", value = ""] = pair.split("=");
          return {
            name,
            value,
            domain: url.hostname,
            path: "/",
            httpOnly: true,
            sameSite: "Strict",
          };
        }),
      );
      const { page } = browser;
      await page.goto(`${base}/`);
      equal(await heading(page), "Overview");
      ok(await page.locator("#control-gateway").isVisible(), "the matrix is in the first paint");
      match(await page.locator(".live-controls .link").textContent() ?? "", /Snapshot/);
      await page.goto(`${base}/audit?type=auth.setup`);
      equal(await page.locator("table.audit-table tbody tr").count(), 1, "filters work as a form");
      await page.goto(`${base}/policy`);
      ok(await page.locator("details.policy-section").count() > 3);
      match(await page.textContent("body") ?? "", /\d+ decisions given since/);
    } finally {
      await browser.close();
      await sys.stop();
    }
  },
});
