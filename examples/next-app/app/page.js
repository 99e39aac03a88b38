// Rendered on each request by the Next.js server (not prerendered).
export const dynamic = "force-dynamic";

export default function Page() {
  return <h1>{`hello from kiln next-app (node ${process.version})`}</h1>;
}
