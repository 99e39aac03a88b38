export default {
  // output: 'export',
  output: "standalone",
  images: { unoptimized: true },
};
