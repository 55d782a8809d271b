// Initiate replica set rs0 over the three compose nodes; safe to run again (it then only waits).
const members = [
  { _id: 0, host: "mongo1:27017", priority: 2 },
  { _id: 1, host: "mongo2:27017", priority: 1 },
  { _id: 2, host: "mongo3:27017", priority: 1 },
];
try {
  rs.status();
  print("rs0 already initiated");
} catch (e) {
  if (e.codeName !== "NotYetInitialized") throw e;
  rs.initiate({ _id: "rs0", members: members });
  print("rs0 initiated");
}
for (let i = 0; i < 120; i++) {
  const primary = rs.status().members.find((m) => m.stateStr === "PRIMARY");
  if (primary) {
    print("primary: " + primary.name);
    quit(0);
  }
  sleep(1000);
}
print("no primary elected within 120s");
quit(1);
