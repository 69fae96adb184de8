// The page of `deepworks ui`, built into the Python package (src/deepworks/ui/static), which the server serves.
// Every asset is local: no CDN, no remote font (the tests fail on any request to another host).
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: { outDir: "../src/deepworks/ui/static", emptyOutDir: true, chunkSizeWarningLimit: 1000 },
  server: { proxy: { "/api": "http://127.0.0.1:8080", "/v1": "http://127.0.0.1:8080" } },
});
