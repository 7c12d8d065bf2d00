import type { GetServerSideProps } from "next";

type Props = { at: string };

// Rendered per request: the page shows the server's time and the build's marker.
export const getServerSideProps: GetServerSideProps<Props> = async () => ({ props: { at: new Date().toISOString() } });

export default function Home({ at }: Props) {
  return (
    <main>
      <h1>hello from next</h1>
      <p>rendered at {at}</p>
    </main>
  );
}
