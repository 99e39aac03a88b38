export default function Page() {
  return <h1>hello from kiln next-static</h1>;
}
