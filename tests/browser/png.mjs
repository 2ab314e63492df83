// Reads back the screenshots the browser tests save (8-bit RGB or RGBA, not interlaced: what
// Chromium and Firefox write) with node's own zlib, to check their pixels.
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';

/** @returns {{width: number, height: number, pixel: (x: number, y: number) => number[]}} */
export function readPng(path) {
  const file = readFileSync(path);
  if (file.toString('latin1', 1, 4) !== 'PNG') throw new Error(`${path} is not a PNG`);
  let width = 0, height = 0, channels = 0;
  const idat = [];
  for (let at = 8; at < file.length;) {
    const length = file.readUInt32BE(at);
    const type = file.toString('latin1', at + 4, at + 8);
    const body = file.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const [depth, colour, interlace] = [body[8], body[9], body[12]];
      channels = { 2: 3, 6: 4 }[colour];
      if (depth !== 8 || !channels || interlace) throw new Error(`${path}: unsupported PNG (depth ${depth}, colour ${colour}, interlace ${interlace})`);
    } else if (type === 'IDAT') idat.push(body);
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const left = i >= channels ? pixels[y * stride + i - channels] : 0;
      const up = y > 0 ? pixels[(y - 1) * stride + i] : 0;
      const upLeft = y > 0 && i >= channels ? pixels[(y - 1) * stride + i - channels] : 0;
      let predicted = 0;
      if (filter === 1) predicted = left;
      else if (filter === 2) predicted = up;
      else if (filter === 3) predicted = (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - upLeft;
        const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - upLeft)];
        predicted = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      }
      pixels[y * stride + i] = (line[i] + predicted) & 0xff;
    }
  }
  const pixel = (x, y) => [...pixels.subarray(y * stride + x * channels, y * stride + x * channels + 3)];
  return { width, height, pixel };
}

/**
 * The share of pixels inside `box` (CSS pixels; `scale` device pixels each) within `tolerance` of
 * `rgb`, e.g. how much of a meter bar is its green.
 */
export function shareOfColour(image, box, rgb, { scale = 1, tolerance = 40 } = {}) {
  let inside = 0, matching = 0;
  const [x0, y0] = [Math.ceil(box.x * scale), Math.ceil(box.y * scale)];
  const [x1, y1] = [Math.floor((box.x + box.width) * scale), Math.floor((box.y + box.height) * scale)];
  for (let y = Math.max(0, y0); y < Math.min(image.height, y1); y++) {
    for (let x = Math.max(0, x0); x < Math.min(image.width, x1); x++) {
      inside++;
      const [r, g, b] = image.pixel(x, y);
      if (Math.abs(r - rgb[0]) + Math.abs(g - rgb[1]) + Math.abs(b - rgb[2]) <= tolerance) matching++;
    }
  }
  return inside ? matching / inside : 0;
}
