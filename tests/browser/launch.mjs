// The one browser launcher of the .mjs scripts. SIPBRIDGE_TEST_BROWSER picks the browser:
// `chromium` (the default: Debian's /usr/bin/chromium through playwright-core) or `firefox`
// (Debian's /usr/bin/firefox-esr, driven by playwright-core over WebDriver BiDi, since
// Playwright's own patched Firefox cannot be downloaded here). Never a downloaded browser.
//
// launch({ media, toneHz, insecureCerts }) returns a playwright Browser:
// - `media`: a fake microphone granted without prompts, autoplay, and WebRTC candidates on
//   loopback; `toneHz` makes the microphone a sine of that frequency (Chromium plays a WAV
//   written here, Firefox's fake device is a sine already);
// - `insecureCerts`: accept self-signed certificates (the tests' own HTTPS and WSS).
import { chromium, firefox } from 'playwright-core';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sineWav } from './wav.mjs';

export const browserName = process.env.SIPBRIDGE_TEST_BROWSER || 'chromium';

export async function launch({ media = false, toneHz, insecureCerts = false } = {}) {
  if (browserName === 'chromium') return launchChromium({ media, toneHz, insecureCerts });
  if (browserName === 'firefox') return launchFirefox({ media, toneHz });
  throw new Error(`SIPBRIDGE_TEST_BROWSER=${browserName}: expected chromium or firefox`);
}

function launchChromium({ media, toneHz, insecureCerts }) {
  const args = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'];
  if (insecureCerts) args.push('--ignore-certificate-errors');
  if (media) {
    args.push('--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      '--autoplay-policy=no-user-gesture-required', '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns', '--disable-quic');
    if (toneHz !== undefined) {
      const wav = join(mkdtempSync(join(tmpdir(), 'sipbridge-tone-')), `tone-${toneHz}hz.wav`);
      writeFileSync(wav, sineWav(Number(toneHz), 48000, 30));
      args.push(`--use-file-for-fake-audio-capture=${wav}`);
    }
  }
  return chromium.launch({ executablePath: '/usr/bin/chromium', args });
}

function launchFirefox({ media, toneHz }) {
  const prefs = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'firefox-prefs.json'), 'utf8'));
  const firefoxUserPrefs = { ...prefs.quiet, ...(media ? prefs.media : {}) };
  if (media && toneHz !== undefined) firefoxUserPrefs['media.navigator.audio.fake_frequency'] = Number(toneHz);
  // A `moz-` channel makes playwright-core speak WebDriver BiDi to a stock Firefox.
  return firefox.launch({ channel: 'moz-firefox-esr', executablePath: '/usr/bin/firefox-esr', firefoxUserPrefs,
    env: { ...process.env, MOZ_CRASHREPORTER_DISABLE: '1' } });
}
