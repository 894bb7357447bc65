// Readable device names from a user agent: "Chrome on Linux", "Safari on iPhone".
'use strict';

const BROWSERS = [
  [/Edg(e|A|iOS)?\//, 'Edge'],
  [/OPR\/|Opera/, 'Opera'],
  [/Firefox\/|FxiOS\//, 'Firefox'],
  [/SamsungBrowser\//, 'Samsung Internet'],
  [/(Headless)?Chrome\/|CriOS\//, 'Chrome'],
  [/Version\/[\d.]+.*Safari\//, 'Safari'],
  [/^curl\//, 'curl'],
  [/^reqwest|^python-requests|^Go-http-client/, 'a script'],
];

const SYSTEMS = [
  [/iPhone/, 'iPhone'],
  [/iPad/, 'iPad'],
  [/Android/, 'Android'],
  [/CrOS/, 'ChromeOS'],
  [/Windows/, 'Windows'],
  [/Mac OS X|Macintosh/, 'macOS'],
  [/Linux|X11/, 'Linux'],
];

export function deviceName(userAgent) {
  const ua = String(userAgent || '');
  if (!ua || ua === 'unknown device') return 'Unknown device';
  const browser = (BROWSERS.find(([re]) => re.test(ua)) || [null, null])[1];
  const system = (SYSTEMS.find(([re]) => re.test(ua)) || [null, null])[1];
  if (browser && system) return `${browser} on ${system}`;
  if (browser) return browser === 'a script' ? 'A script or program' : browser;
  if (system) return `A browser on ${system}`;
  return 'Unknown device';
}
