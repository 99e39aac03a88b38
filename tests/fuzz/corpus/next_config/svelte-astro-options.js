import adapter from '@sveltejs/adapter-node';
export default { kit: { adapter: adapter({ out: 'server', precompress: false }) }, ssr: false, outDir: './site', mode: 'middleware' };
