import type { NextConfig } from "next";

// Static HTML export: next build writes out/.
const nextConfig: NextConfig = {
  output: "export",
  images: { unoptimized: true },
};

export default nextConfig;
