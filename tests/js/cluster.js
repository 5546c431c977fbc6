// Writes and reads back keys through ioredis's Cluster client: node cluster.js PORT COUNT
const Redis = require("ioredis");

async function main() {
  const [port, count] = [Number(process.argv[2]), Number(process.argv[3] || 1000)];
  const cluster = new Redis.Cluster([{ host: "127.0.0.1", port }], { enableOfflineQueue: true });
  try {
    for (let i = 0; i < count; i++) await cluster.set(`io:${i}`, `v${i}`);
    for (let i = 0; i < count; i++) {
      const v = await cluster.get(`io:${i}`);
      if (v !== `v${i}`) throw new Error(`io:${i} read back ${v}`);
    }
    const pipe = cluster.pipeline();
    pipe.set("{io}a", "1").set("{io}b", "2").mget("{io}a", "{io}b");
    const res = await pipe.exec();
    if (JSON.stringify(res[2][1]) !== JSON.stringify(["1", "2"])) throw new Error(`pipeline: ${JSON.stringify(res)}`);
    console.log("ok");
  } finally {
    cluster.disconnect();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
