// The microphone and the webcam, for the Try page and the Start page: a recording as a WAV file the server reads,
// and a webcam frame as a PNG.

// `seconds` of the microphone as mono float samples at the sound card's rate (the server resamples). While it records,
// `onPart(samplesSoFar, rate)` is called every `every` seconds (a recogniser shows what it heard so far), and it
// stops early once `stop.current` is true.
export async function recordMicrophone(seconds, { every = 0, onPart = null, stop = null } = {}) {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const tap = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  tap.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(tap);
  tap.connect(context.destination);
  const rate = context.sampleRate;
  const joined = () => {
    const samples = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (samples.set(c, at), at + c.length), 0);
    return samples;
  };
  const started = Date.now();
  let lastPart = started;
  await new Promise((done) => {
    const timer = setInterval(() => {
      const now = Date.now();
      if (onPart && every && now - lastPart >= every * 1000) {
        lastPart = now;
        onPart(joined(), rate);
      }
      if (now - started >= seconds * 1000 + 200 || (stop && stop.current)) {
        clearInterval(timer);
        done();
      }
    }, 100);
  });
  tap.disconnect();
  source.disconnect();
  stream.getTracks().forEach((t) => t.stop());
  await context.close();
  return { samples: joined(), rate };
}

// Float samples as a 16-bit PCM WAV file (a 44-byte header, then the samples).
export function wavFile(samples, rate) {
  const view = new DataView(new ArrayBuffer(44 + 2 * samples.length));
  const text = (at, s) => [...s].forEach((ch, i) => view.setUint8(at + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * samples.length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * samples.length, true);
  samples.forEach((x, i) => view.setInt16(44 + 2 * i, Math.max(-1, Math.min(1, x)) * 32767, true));
  return view.buffer;
}

// `seconds` of the microphone as a WAV File named `name`.
export async function recordWav(seconds, name = "microphone.wav") {
  const { samples, rate } = await recordMicrophone(seconds);
  return new File([wavFile(samples, rate)], name, { type: "audio/wav" });
}

// The webcam's video stream (the browser asks the user first).
export function openCamera() {
  return navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
}

export function closeStream(stream) {
  if (stream) stream.getTracks().forEach((t) => t.stop());
}

// The video's current frame, its centre square scaled to `size` pixels, as a PNG Blob (null before the first frame).
// A square of 224 px is what a photo model sees at most; smaller uploads keep the flow quick.
export function snapFrame(video, size = 224) {
  const [w, h] = [video.videoWidth, video.videoHeight];
  if (!w || !h) return Promise.resolve(null);
  const side = Math.min(w, h);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  canvas.getContext("2d").drawImage(video, (w - side) / 2, (h - side) / 2, side, side, 0, 0, size, size);
  return new Promise((done) => canvas.toBlob(done, "image/png"));
}

// The video's whole current frame, scaled down to at most `most` pixels on its longer side, as
// { blob (PNG), width, height } (null before the first frame): faces anywhere in the picture, at a size MTCNN finds.
export async function snapPhoto(video, most = 640) {
  const [w, h] = [video.videoWidth, video.videoHeight];
  if (!w || !h) return null;
  const scale = Math.min(1, most / Math.max(w, h));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(w * scale);
  canvas.height = Math.round(h * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
  return { blob, width: canvas.width, height: canvas.height };
}
