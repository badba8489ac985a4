// Drives the operator dashboard in Debian's Chromium: sign in, read the queue, click Retry
// on a dead job, check the confirmation, take a full-page screenshot.
// Usage: node dashboard.mjs <base-url> <ops-token> <job-id> <screenshot.png>
import { launch } from './launch.mjs';

const [base, token, jobId, shot] = process.argv.slice(2);
const fail = (msg) => { console.error(msg); process.exit(1); };

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const first = await page.goto(`${base}/ops/`);
  if (first.status() !== 200) fail(`GET /ops/ answered ${first.status()}`);
  await page.fill('input[name=token]', token);
  await Promise.all([page.waitForURL(`${base}/ops/`), page.click('button[type=submit]')]);
  await page.waitForSelector('h2:has-text("Queue")');

  const dead = (await page.textContent('.card[data-state=dead] b')).trim();
  if (dead !== '1') fail(`expected 1 dead job on the dashboard, saw ${dead}`);
  const error = await page.textContent(`tr[data-job="${jobId}"] td.err`);
  if (!error.includes('554')) fail(`the failure's error is not shown: ${error}`);
  if (!(await page.isVisible('svg[aria-label="Funnel per campaign"]'))) fail('no funnel chart');

  await Promise.all([page.waitForURL(/\/ops\/\?done=retried/), page.click(`tr[data-job="${jobId}"] button`)]);
  const msg = await page.textContent('.msg');
  if (!msg.includes('queued again')) fail(`unexpected confirmation: ${msg}`);
  const deadAfter = (await page.textContent('.card[data-state=dead] b')).trim();
  if (deadAfter !== '0') fail(`dead jobs after retry: ${deadAfter}`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log('dashboard ok');
} finally {
  await browser.close();
}
