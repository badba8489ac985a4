// Drives every page of the operator console in Debian's Chromium, with the keyboard where a
// person would, and keeps a full-page screenshot of each.
// Usage: node console.mjs <base-url> <ops-token> <dead-job-id> <cart-id> <customer-email> <campaign> <screenshot-dir>
import { launch } from './launch.mjs';

const [base, token, jobId, cartId, email, campaign, dir] = process.argv.slice(2);
const fail = (msg) => { console.error(msg); process.exit(1); };
const shot = (page, name) => page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });

// Accessibility basics every page must keep: a label for each field, a skip link reached
// first by the keyboard, one h1 or the overview's sections, and the current page marked.
async function basics(page, name) {
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input:not([type=hidden]), select')]
    .filter((e) => !e.labels || e.labels.length === 0).map((e) => e.name));
  if (unlabelled.length) fail(`${name}: fields without a label: ${unlabelled}`);
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
  if (first !== 'Skip to content') fail(`${name}: the first Tab stop is "${first}", not the skip link`);
  if (!(await page.isVisible('nav a[aria-current=page]'))) fail(`${name}: the navigation does not mark the page`);
  await page.evaluate(() => document.activeElement && document.activeElement.blur());
}

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(`${base}/ops/`);
  await page.getByLabel('Ops token').fill(token);
  await Promise.all([page.waitForURL(`${base}/ops/`), page.getByRole('button', { name: 'Sign in' }).click()]);
  await page.waitForSelector('h2:has-text("Queue")');
  await basics(page, 'overview');
  await shot(page, 'overview');

  // Jobs: filter by state with the form, open the dead job, retry it from its page.
  await page.click('nav.top >> text=Jobs');
  await page.getByLabel('State').selectOption('dead');
  await Promise.all([page.waitForURL(/state=dead/), page.getByRole('button', { name: 'Filter' }).click()]);
  const rows = await page.locator('tr[data-job]').count();
  if (rows !== 1) fail(`jobs?state=dead lists ${rows} jobs, expected the 1 dead one`);
  await basics(page, 'jobs');
  await shot(page, 'jobs');
  await Promise.all([page.waitForURL(new RegExp(`/ops/ui/jobs/${jobId}$`)), page.click(`tr[data-job="${jobId}"] a`)]);
  const detail = await page.textContent('main');
  if (!detail.includes('554') || !detail.includes('5 of')) fail(`the job's page lacks its error or attempts: ${detail}`);
  await shot(page, 'job');
  await Promise.all([page.waitForURL(/done=retried/), page.getByRole('button', { name: 'Retry' }).click()]);
  if (!(await page.textContent('.msg')).includes('queued again')) fail('no confirmation of the retry');

  // Campaigns: pause, see it paused, resume.
  await page.click('nav.top >> text=Campaigns');
  await basics(page, 'campaigns');
  await Promise.all([page.waitForURL(/done=paused/), page.getByRole('button', { name: `Pause ${campaign}` }).click()]);
  const paused = (await page.textContent(`tr[data-campaign="${campaign}"] .state`)).trim();
  if (paused !== 'paused') fail(`after Pause the campaign is ${paused}`);
  await shot(page, 'campaigns');
  await Promise.all([page.waitForURL(/done=resumed/), page.getByRole('button', { name: `Resume ${campaign}` }).click()]);
  const resumed = (await page.textContent(`tr[data-campaign="${campaign}"] .state`)).trim();
  if (resumed !== 'running') fail(`after Resume the campaign is ${resumed}`);

  // Carts: search by the customer's email (typed, submitted with Enter), open the cart.
  await page.click('nav.top >> text=Carts');
  await basics(page, 'carts');
  await page.getByLabel('Cart id, customer email or phone').fill(email.toUpperCase());
  await Promise.all([page.waitForSelector('h2:has-text("Results")'), page.keyboard.press('Enter')]);
  if (page.url().includes('@') || page.url().includes('%40')) fail(`the address stands in the URL: ${page.url()}`);
  const results = await page.textContent('table');
  if (results.toLowerCase().includes(email.toLowerCase())) fail('the results show the address unmasked');
  if (!results.includes('***@example.com')) fail(`the results lack the masked address: ${results}`);
  await shot(page, 'carts');
  await Promise.all([page.waitForURL(new RegExp(`/ops/ui/carts/.+/${cartId}$`)), page.click(`a:has-text("${cartId}")`)]);
  const timeline = await page.textContent('table.timeline');
  if (!timeline.includes('CET') && !timeline.includes('CEST')) fail(`the timeline lacks the customer's time: ${timeline}`);
  if ((await page.locator('table.timeline tr[data-what=sent]').count()) < 1) fail('the timeline lacks the sent step');
  await shot(page, 'cart');

  // Charts: today's message is drawn.
  await page.click('nav.top >> text=Charts');
  await basics(page, 'charts');
  if (!(await page.isVisible('svg[aria-label="Messages per day"]'))) fail('no messages chart');
  if ((await page.locator('svg[aria-label="Messages per day"] rect').count()) < 1) fail('the messages chart is empty');
  await shot(page, 'charts');

  // Outbound: the dead webhook, retried.
  await page.click('nav.top >> text=Outbound');
  await basics(page, 'outbound');
  await shot(page, 'outbound');
  await Promise.all([page.waitForURL(/done=redelivering/), page.getByRole('button', { name: 'Retry' }).click()]);
  if (!(await page.textContent('.msg')).includes('queued for delivery again')) fail('no confirmation of the redelivery');
  console.log('console ok');
} finally {
  await browser.close();
}
