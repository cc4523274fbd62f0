// The Java Kafka client, the reference implementation, as a test client of
// skiff's Kafka listener (tests/kafka_clients.rs runs it as a subprocess).
//
// Usage: Main --bootstrap HOST:PORT --topic T [--count N] [--partition P]
//             [--partitions N] [--group G] [--timeout-ms MS]
//             [--config KEY=VALUE]... MODE
//
// --config sets a client property (repeatable), e.g. security.protocol,
// sasl.mechanism, sasl.jaas.config, ssl.truststore.type/location.
//
// Every mode prints one JSON object per line on stdout and exits 1 with the
// reason on stderr on any failure; --timeout-ms bounds the whole run.
//   produce   N records keyed key-I, valued value-I, header h=hv-I, by an
//             idempotent producer with the client's default settings
//   consume   N records from the beginning of every partition (assign, no group)
//   group     a consumer group member with the cooperative-sticky assignor:
//             prints "owned" after every assignment change, "record" per
//             record, commits synchronously after each poll ("committed"),
//             and leaves the group when a line "leave" arrives on stdin (or
//             stdin closes)
//   create-topic | list-topics | describe-topic | delete-topic   AdminClient
package skiff.kc;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class Main {
    private String bootstrap;
    private String topic;
    private String group = "java-test";
    private int count = 10;
    private Integer partition;
    private int partitions = 1;
    private long timeoutMs = 30_000;
    private String mode;
    private final Properties extra = new Properties();

    public static void main(String[] argv) {
        // Only the client's warnings reach stderr (slf4j-simple).
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", "warn");
        Main m = new Main();
        try {
            m.parse(argv);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
        }
        try {
            m.run();
            System.exit(0);
        } catch (Exception e) {
            StringBuilder why = new StringBuilder(m.mode + ": " + e);
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
                why.append(" caused by ").append(c);
            }
            System.err.println(why);
            System.exit(1);
        }
    }

    private void parse(String[] argv) {
        for (int i = 0; i < argv.length; i++) {
            String flag = argv[i];
            if (!flag.startsWith("--")) {
                if (mode != null) {
                    throw new IllegalArgumentException("more than one mode: " + mode + ", " + flag);
                }
                mode = flag;
                continue;
            }
            if (i + 1 >= argv.length) {
                throw new IllegalArgumentException(flag + " needs a value");
            }
            String v = argv[++i];
            switch (flag) {
                case "--bootstrap" -> bootstrap = v;
                case "--topic" -> topic = v;
                case "--group" -> group = v;
                case "--count" -> count = Integer.parseInt(v);
                case "--partition" -> partition = Integer.parseInt(v);
                case "--partitions" -> partitions = Integer.parseInt(v);
                case "--timeout-ms" -> timeoutMs = Long.parseLong(v);
                case "--config" -> {
                    int eq = v.indexOf('=');
                    if (eq <= 0) {
                        throw new IllegalArgumentException("--config needs KEY=VALUE, got " + v);
                    }
                    extra.put(v.substring(0, eq), v.substring(eq + 1));
                }
                default -> throw new IllegalArgumentException("unknown flag " + flag);
            }
        }
        if (bootstrap == null || mode == null || (topic == null && !mode.equals("list-topics"))) {
            throw new IllegalArgumentException(
                "usage: Main --bootstrap HOST:PORT --topic T [--count N] [--partition P] "
                    + "[--partitions N] [--group G] [--timeout-ms MS] [--config KEY=VALUE]... "
                    + "produce|consume|group|create-topic|list-topics|describe-topic|delete-topic");
        }
    }

    private void run() throws Exception {
        switch (mode) {
            case "produce" -> produce();
            case "consume" -> consume();
            case "group" -> group();
            case "create-topic", "list-topics", "describe-topic", "delete-topic" -> admin();
            default -> throw new IllegalArgumentException("unknown mode " + mode);
        }
    }

    /** The --config properties, to which each mode adds its own. */
    private Properties base() {
        Properties p = new Properties();
        p.putAll(extra);
        return p;
    }

    private void produce() throws Exception {
        Properties p = base();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        // Bounded by --timeout-ms (delivery must exceed request + linger).
        int deliveryMs = (int) Math.min(timeoutMs, Integer.MAX_VALUE);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, deliveryMs);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, Math.min(30_000, deliveryMs / 2));
        // Everything else stays at the client's defaults: acks=all,
        // enable.idempotence=true, 5 requests in flight.
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            List<java.util.concurrent.Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                ProducerRecord<String, String> r =
                    new ProducerRecord<>(topic, partition, "key-" + i, "value-" + i);
                r.headers().add("h", ("hv-" + i).getBytes(StandardCharsets.UTF_8));
                acks.add(producer.send(r));
            }
            for (int i = 0; i < count; i++) {
                RecordMetadata md = acks.get(i).get(timeoutMs, TimeUnit.MILLISECONDS);
                emit("{\"event\":\"produced\",\"partition\":" + md.partition() + ",\"offset\":" + md.offset()
                    + ",\"timestamp\":" + md.timestamp() + ",\"key\":" + json("key-" + i) + ",\"value\":" + json("value-" + i) + "}");
            }
        }
        emit("{\"event\":\"done\",\"count\":" + count + "}");
    }

    private Properties consumerProps() {
        Properties p = base();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        return p;
    }

    private void consume() throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerProps())) {
            List<TopicPartition> tps = new ArrayList<>();
            consumer.partitionsFor(topic, Duration.ofMillis(timeoutMs))
                .forEach(info -> tps.add(new TopicPartition(topic, info.partition())));
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            int seen = 0;
            while (seen < count) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException(seen + " of " + count + " records in " + timeoutMs + " ms");
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    if (seen < count) {
                        emit(recordJson(r));
                        seen++;
                    }
                }
            }
            emit("{\"event\":\"done\",\"count\":" + seen + "}");
        }
    }

    private void group() throws Exception {
        Properties p = consumerProps();
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
        AtomicBoolean leave = new AtomicBoolean(false);
        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null && !line.equals("leave")) {
                    // only "leave" means anything
                }
            } catch (java.io.IOException e) {
                // a broken stdin means the test is gone: leave
            }
            leave.set(true);
        });
        stdin.setDaemon(true);
        stdin.start();
        long deadline = System.currentTimeMillis() + timeoutMs;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
            TreeSet<Integer> owned = new TreeSet<>();
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> revoked) {
                    // Cooperative: commit what was read from the partitions
                    // being handed over before they go.
                    if (!revoked.isEmpty()) {
                        consumer.commitSync();
                    }
                    revoked.forEach(tp -> owned.remove(tp.partition()));
                    emit("{\"event\":\"owned\",\"partitions\":" + owned + "}");
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> assigned) {
                    assigned.forEach(tp -> owned.add(tp.partition()));
                    emit("{\"event\":\"owned\",\"partitions\":" + owned + "}");
                }

                @Override
                public void onPartitionsLost(Collection<TopicPartition> lost) {
                    lost.forEach(tp -> owned.remove(tp.partition()));
                    emit("{\"event\":\"owned\",\"partitions\":" + owned + "}");
                }
            });
            while (!leave.get()) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("no leave request in " + timeoutMs + " ms");
                }
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<String, String> r : records) {
                    emit(recordJson(r));
                }
                if (!records.isEmpty()) {
                    consumer.commitSync();
                    emit("{\"event\":\"committed\",\"records\":" + records.count() + "}");
                }
            }
            consumer.commitSync();
        } // close() leaves the group
        emit("{\"event\":\"left\"}");
    }

    private void admin() throws Exception {
        Properties p = base();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) Math.min(timeoutMs, Integer.MAX_VALUE));
        try (Admin admin = Admin.create(p)) {
            switch (mode) {
                case "create-topic" -> {
                    admin.createTopics(List.of(new NewTopic(topic, partitions, (short) 1)))
                        .all().get(timeoutMs, TimeUnit.MILLISECONDS);
                    emit("{\"event\":\"create-topic\",\"topic\":" + json(topic) + "}");
                }
                case "list-topics" -> {
                    TreeSet<String> names = new TreeSet<>(admin.listTopics().names().get(timeoutMs, TimeUnit.MILLISECONDS));
                    StringBuilder b = new StringBuilder();
                    for (String n : names) {
                        b.append(b.length() == 0 ? "" : ",").append(json(n));
                    }
                    emit("{\"event\":\"list-topics\",\"topics\":[" + b + "]}");
                }
                case "describe-topic" -> {
                    Map<String, TopicDescription> d = admin.describeTopics(List.of(topic))
                        .allTopicNames().get(timeoutMs, TimeUnit.MILLISECONDS);
                    TopicDescription t = d.get(topic);
                    emit("{\"event\":\"describe-topic\",\"topic\":" + json(t.name())
                        + ",\"partitions\":" + t.partitions().size() + "}");
                }
                case "delete-topic" -> {
                    admin.deleteTopics(List.of(topic)).all().get(timeoutMs, TimeUnit.MILLISECONDS);
                    emit("{\"event\":\"delete-topic\",\"topic\":" + json(topic) + "}");
                }
                default -> throw new IllegalArgumentException("unknown admin mode " + mode);
            }
        }
    }

    private static String recordJson(ConsumerRecord<String, String> r) {
        StringBuilder h = new StringBuilder();
        for (Header header : r.headers()) {
            h.append(h.length() == 0 ? "" : ",").append('[').append(json(header.key())).append(',')
                .append(json(new String(header.value(), StandardCharsets.UTF_8))).append(']');
        }
        return "{\"event\":\"record\",\"partition\":" + r.partition() + ",\"offset\":" + r.offset()
            + ",\"timestamp\":" + r.timestamp() + ",\"key\":" + json(r.key()) + ",\"value\":" + json(r.value())
            + ",\"headers\":[" + h + "]}";
    }

    /** A JSON string literal (or null). */
    private static String json(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    private static synchronized void emit(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
