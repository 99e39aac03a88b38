// Drives kiln serve's dashboard in headless Chromium (playwright-core + Debian's chromium) and
// prints what a person would see as one JSON object; the Python test asserts on it.
// argv: NODE_MODULES CHROMIUM JSON{base, token, good, fail, xss, shots}
"use strict";
const path = require("path");
const { chromium } = require(path.join(process.argv[2], "playwright-core"));
const chromiumPath = process.argv[3];
const a = JSON.parse(process.argv[4]);

async function cells(page, id) {
  return page.$eval(`tr.build[data-id="${id}"]`, (tr) => {
    const o = {};
    for (const td of tr.children) o[td.className.split(" ")[0].replace(/^col-/, "")] = td.textContent;
    return o;
  });
}
const rowIds = (page) => page.$$eval("#builds tr.build", (rs) => rs.map((r) => r.dataset.id));

(async () => {
  const out = { dialogs: [], errors: [] };
  const browser = await chromium.launch({
    executablePath: chromiumPath, headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
    page.setDefaultTimeout(20000);
    page.on("dialog", (d) => { out.dialogs.push(d.message()); d.dismiss(); });
    page.on("pageerror", (e) => out.errors.push(String(e)));
    // the list's API queries, to see the filters asked of the server
    let lastListQuery = "";
    page.on("request", (r) => { if (r.url().includes("/v1/builds?")) lastListQuery = r.url(); });
    await page.goto(`${a.base}/#token=${a.token}`);
    for (const id of [a.good, a.fail, a.xss])
      await page.waitForSelector(`tr.build[data-id="${id}"] td.status:is(.succeeded,.failed)`);
    out.headers = await page.$$eval("#builds th", (ths) => ths.map((t) => t.textContent));
    out.rows = {};
    if (a.git)
      await page.waitForSelector(`tr.build[data-id="${a.git}"] td.status:is(.succeeded,.failed)`);
    for (const [k, id] of [["good", a.good], ["fail", a.fail], ["xss", a.xss], ["git", a.git]])
      if (id) out.rows[k] = await cells(page, id);
    out.all_ids = await rowIds(page);
    await page.screenshot({ path: a.shots + "/dashboard-list.png", fullPage: true });
    // the XSS row: the payloads are text; nothing they carry became an element or ran
    out.xss_elements = await page.$$eval("#builds img, #builds script, #builds svg", (e) => e.length);
    out.xss_flag = await page.evaluate(() => window.__kiln_xss || null);
    // the page's CSP: a script element added to it (as markup that became one would be) is
    // not run
    out.csp_injected = await page.evaluate(() => {
      const sc = document.createElement("script");
      sc.textContent = "window.__kiln_csp = 1";
      document.body.appendChild(sc);
      return window.__kiln_csp || null;
    });

    // filter by status, then by the beginning of a branch (both asked of the server)
    await page.selectOption("#f-status", "failed");
    await page.waitForFunction((good) => !document.querySelector(`tr.build[data-id="${good}"]`) &&
      document.querySelectorAll("#builds tr.build").length > 0, a.good);
    out.status_filtered = await rowIds(page);
    out.hash_after_filter = await page.evaluate(() => location.hash);
    await page.fill("#f-branch", "x<img/src");
    await page.waitForFunction((fail) => !document.querySelector(`tr.build[data-id="${fail}"]`), a.fail);
    out.branch_filtered = await rowIds(page);
    await page.selectOption("#f-status", "");
    out.branch_query = lastListQuery;
    // the repository filter alone: the beginning of the git build's URL
    if (a.git_repo) {
      await page.fill("#f-branch", "");
      await page.fill("#f-repo", a.git_repo.slice(0, -4));
      await page.waitForFunction((good) => !document.querySelector(`tr.build[data-id="${good}"]`) &&
        document.querySelectorAll("#builds tr.build").length > 0, a.good);
      out.repo_filtered = await rowIds(page);
      out.repo_query = lastListQuery;
      await page.fill("#f-repo", "");
    }
    await page.fill("#f-branch", "");

    // the failing build's page: its log and the failing step
    await page.goto(`${a.base}/#build/${a.fail}`);
    await page.waitForSelector("#failure-log");
    await page.waitForFunction(() => document.getElementById("log").textContent.includes("dash-fail-out-2"));
    out.fail_page = await page.evaluate(() => ({
      status: document.getElementById("build").dataset.status,
      log: document.getElementById("log").textContent,
      error: document.getElementById("error").textContent,
      failure_log: document.getElementById("failure-log").textContent,
      fields: Object.fromEntries([...document.querySelectorAll("#error dd")].map((d) => [d.dataset.field, d.textContent])),
    }));
    await page.screenshot({ path: a.shots + "/dashboard-failed-build.png", fullPage: true });

    // the good build's page: steps with times and cache marks, the image digest
    await page.goto(`${a.base}/#build/${a.good}`);
    await page.waitForSelector("#steps tr.step");
    await page.waitForFunction(() => document.getElementById("log").textContent.includes("dash-good-line"));
    out.good_page = await page.evaluate(() => ({
      status: document.getElementById("build").dataset.status,
      steps: [...document.querySelectorAll("#steps tr.step")].map((r) => [...r.children].map((c) => c.textContent)),
      outputs: document.getElementById("artifacts").textContent,
      error_shown: document.getElementById("error").style.display !== "none",
      fields: Object.fromEntries([...document.querySelectorAll("#build dd")].map((d) => [d.dataset.field, d.textContent])),
    }));

    // the same Dockerfile built again: its steps are cache hits
    await page.goto(`${a.base}/#build/${a.again}`);
    await page.waitForSelector("#steps tr.step");
    out.again_steps = await page.$$eval("#steps tr.step", (rs) => rs.map((r) => [...r.children].map((c) => c.textContent)));

    // the XSS build's page: the branch and message shown as text there too
    await page.goto(`${a.base}/#build/${a.xss}`);
    await page.waitForSelector('#build dd[data-field="branch"]');
    out.xss_page = await page.evaluate(() => ({
      fields: Object.fromEntries([...document.querySelectorAll("#build dd")].map((d) => [d.dataset.field, d.textContent])),
      elements: document.querySelectorAll("#main img, #main script, #main svg").length,
    }));
    await page.screenshot({ path: a.shots + "/dashboard-xss-build.png", fullPage: true });
    out.xss_flag_end = await page.evaluate(() => window.__kiln_xss || null);
  } catch (e) {
    out.failure = String(e && e.stack || e);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out) + "\n");
})();
