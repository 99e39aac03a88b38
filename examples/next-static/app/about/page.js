export default function About() {
  return <p>about kiln next-static</p>;
}
