// The page scripts' browser (tests/support/browser.rs runs them): Debian's chromium
// (CHROMIUM), headless, through playwright-core from NODE_MODULES (a CDP driver; it
// downloads no browser), with one page on which every request that is not to
// 127.0.0.1 is aborted (no CDN, favicon or validator call leaves the machine).
import { createRequire } from 'node:module';

const require = createRequire(`${process.env.NODE_MODULES}/`);
const { chromium } = require('playwright-core');

// Launches the browser and opens the page; close the browser when done. With
// `{ intercept: false }` no request is routed through playwright: its interception
// answers CORS preflights itself and skips the browser's CORS checks, so a CORS
// test must go without it (its page then must load nothing from elsewhere).
export async function openPage({ intercept = true } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(20000);
  if (!intercept) {
    return { browser, page };
  }
  await page.route('**/*', (route) => {
    const url = new URL(route.request().url());
    return url.hostname === '127.0.0.1' ? route.continue() : route.abort();
  });
  return { browser, page };
}
