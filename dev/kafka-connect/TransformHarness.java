// Runs Kafka Connect's own Single Message Transforms and predicates (connect-transforms 4.1.1) over
// records given as JSON, for the transforms differential (test/integration/kafka-connect-differential.test.ts).
// Compiled and run by dev/kafka-connect.ts (`runTransformHarness`), keyed by this file's hash.
//
// stdin: one JSON case per line:
//   {"case": "<id>", "schemasEnable": true|false, "config": {"transforms": "a,b", "transforms.a.type": ...},
//    "records": [{"topic": "t", "partition": 0, "offset": 5, "timestamp": 1700000000000,
//                 "key": <JSON>, "value": <JSON>, "headers": {"h": "text" | null}}]}
//   key and value are what JsonConverter reads: with schemasEnable a {"schema", "payload"} envelope.
// stdout: one line per case: {"case": "<id>", "results": [<result>...]} or {"case", "error": "..."} when
//   the chain cannot be configured. Each result is {"dropped": true}, {"error": "<class>: <message>"}, or
//   {"topic", "partition", "timestamp", "key", "value", "headers": {"h": "text" | null}}, key and value as
//   JsonConverter writes them (an envelope with schemasEnable), header values as SimpleHeaderConverter
//   writes them.
//
// The chain is built the way Kafka Connect's ConnectorConfig / TransformationChain build it: each alias's
// class instantiated by name and configured with the keys under `transforms.<alias>.`, each predicate
// likewise under `predicates.<name>.`, and a transform with a predicate applied only when the predicate
// (negated with `negate=true`) holds.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.header.ConnectHeaders;
import org.apache.kafka.connect.header.Header;
import org.apache.kafka.connect.json.JsonConverter;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.storage.SimpleHeaderConverter;
import org.apache.kafka.connect.transforms.Transformation;
import org.apache.kafka.connect.transforms.predicates.Predicate;

public class TransformHarness {
  private static final ObjectMapper JSON = new ObjectMapper();

  private record Step(Transformation<SinkRecord> transform, Predicate<SinkRecord> predicate, boolean negate) {}

  public static void main(String[] args) throws Exception {
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      if (line.isBlank()) continue;
      JsonNode input = JSON.readTree(line);
      ObjectNode out = JSON.createObjectNode();
      out.put("case", input.get("case").asText());
      try {
        out.set("results", runCase(input));
      } catch (Exception e) {
        out.put("error", e.getClass().getName() + ": " + e.getMessage());
      }
      System.out.println(JSON.writeValueAsString(out));
      System.out.flush();
    }
  }

  private static ArrayNode runCase(JsonNode input) throws Exception {
    boolean schemas = input.get("schemasEnable").asBoolean();
    JsonConverter keys = converter(schemas, true);
    JsonConverter values = converter(schemas, false);
    SimpleHeaderConverter headerConverter = new SimpleHeaderConverter();
    Map<String, String> config = new HashMap<>();
    input.get("config").fields().forEachRemaining(e -> config.put(e.getKey(), e.getValue().asText()));
    List<Step> chain = chain(config);
    ArrayNode results = JSON.createArrayNode();
    for (JsonNode r : input.get("records")) {
      String topic = r.get("topic").asText();
      SchemaAndValue key = keys.toConnectData(topic, bytes(r.get("key")));
      SchemaAndValue value = values.toConnectData(topic, bytes(r.get("value")));
      ConnectHeaders headers = new ConnectHeaders();
      if (r.has("headers")) {
        Iterator<Map.Entry<String, JsonNode>> it = r.get("headers").fields();
        while (it.hasNext()) {
          Map.Entry<String, JsonNode> h = it.next();
          byte[] raw = h.getValue().isNull() ? null : h.getValue().asText().getBytes(StandardCharsets.UTF_8);
          SchemaAndValue hv = headerConverter.toConnectHeader(topic, h.getKey(), raw);
          headers.add(h.getKey(), hv);
        }
      }
      Long timestamp = r.hasNonNull("timestamp") ? r.get("timestamp").asLong() : null;
      int partition = r.hasNonNull("partition") ? r.get("partition").asInt() : 0;
      long offset = r.hasNonNull("offset") ? r.get("offset").asLong() : 0L;
      SinkRecord record = new SinkRecord(topic, partition, key.schema(), key.value(), value.schema(), value.value(),
          offset, timestamp, timestamp == null ? org.apache.kafka.common.record.TimestampType.NO_TIMESTAMP_TYPE
              : org.apache.kafka.common.record.TimestampType.CREATE_TIME, headers);
      try {
        SinkRecord result = apply(chain, record);
        results.add(result == null ? JSON.createObjectNode().put("dropped", true)
            : describe(result, keys, values, headerConverter));
      } catch (Exception e) {
        results.add(JSON.createObjectNode().put("error", e.getClass().getName() + ": " + e.getMessage()));
      }
    }
    for (Step step : chain) {
      step.transform().close();
      if (step.predicate() != null) step.predicate().close();
    }
    return results;
  }

  private static JsonConverter converter(boolean schemas, boolean isKey) {
    JsonConverter converter = new JsonConverter();
    converter.configure(Map.of("schemas.enable", String.valueOf(schemas)), isKey);
    return converter;
  }

  private static byte[] bytes(JsonNode node) throws Exception {
    return node == null || node.isNull() ? null : JSON.writeValueAsBytes(node);
  }

  @SuppressWarnings("unchecked")
  private static List<Step> chain(Map<String, String> config) throws Exception {
    List<Step> steps = new ArrayList<>();
    String aliases = config.getOrDefault("transforms", "");
    for (String raw : aliases.split(",")) {
      String alias = raw.trim();
      if (alias.isEmpty()) continue;
      String prefix = "transforms." + alias + ".";
      Transformation<SinkRecord> transform =
          (Transformation<SinkRecord>) instantiate(config.get(prefix + "type"));
      transform.configure(under(config, prefix, List.of("type", "predicate", "negate")));
      Predicate<SinkRecord> predicate = null;
      String predicateName = config.get(prefix + "predicate");
      if (predicateName != null && !predicateName.isBlank()) {
        String predicatePrefix = "predicates." + predicateName + ".";
        predicate = (Predicate<SinkRecord>) instantiate(config.get(predicatePrefix + "type"));
        predicate.configure(under(config, predicatePrefix, List.of("type")));
      }
      steps.add(new Step(transform, predicate, Boolean.parseBoolean(config.getOrDefault(prefix + "negate", "false"))));
    }
    return steps;
  }

  private static Object instantiate(String className) throws Exception {
    return Class.forName(className).getDeclaredConstructor().newInstance();
  }

  private static Map<String, Object> under(Map<String, String> config, String prefix, List<String> skip) {
    Map<String, Object> props = new HashMap<>();
    for (Map.Entry<String, String> e : config.entrySet()) {
      if (!e.getKey().startsWith(prefix)) continue;
      String key = e.getKey().substring(prefix.length());
      if (!skip.contains(key)) props.put(key, e.getValue());
    }
    return props;
  }

  /** TransformationChain.apply: each step in order, skipped when its (negated) predicate does not hold. */
  private static SinkRecord apply(List<Step> chain, SinkRecord record) {
    for (Step step : chain) {
      if (step.predicate() != null && step.predicate().test(record) == step.negate()) continue;
      record = step.transform().apply(record);
      if (record == null) return null;
    }
    return record;
  }

  private static ObjectNode describe(SinkRecord r, JsonConverter keys, JsonConverter values,
      SimpleHeaderConverter headerConverter) throws Exception {
    ObjectNode out = JSON.createObjectNode();
    out.put("topic", r.topic());
    if (r.kafkaPartition() == null) out.putNull("partition");
    else out.put("partition", r.kafkaPartition());
    if (r.timestamp() == null) out.putNull("timestamp");
    else out.put("timestamp", r.timestamp());
    out.set("key", tree(keys.fromConnectData(r.topic(), r.keySchema(), r.key())));
    out.set("value", tree(values.fromConnectData(r.topic(), r.valueSchema(), r.value())));
    ObjectNode headers = JSON.createObjectNode();
    for (Header h : r.headers()) {
      byte[] raw = headerConverter.fromConnectHeader(r.topic(), h.key(), h.schema(), h.value());
      if (raw == null) headers.putNull(h.key());
      else headers.put(h.key(), new String(raw, StandardCharsets.UTF_8));
    }
    out.set("headers", headers);
    return out;
  }

  private static JsonNode tree(byte[] bytes) throws Exception {
    return bytes == null ? JSON.nullNode() : JSON.readTree(bytes);
  }
}
