// The standard metrics the runtime records for every task, so connectors never register them
// (Benthos wraps every processor the same way). Names follow Kafka Connect's sink-task,
// source-task and task-error metrics as the Prometheus JMX exporter would spell them, labelled by
// connector and task, on a registry instance owned by the worker.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type TaskLabels = { connector: string; task: string };

/** Metric families, created once per worker registry and shared by its tasks. */
export class RuntimeMetrics {
  readonly sinkRecordRead: Counter<'connector' | 'task'>;
  readonly sinkRecordSend: Counter<'connector' | 'task'>;
  readonly putBatchTime: Histogram<'connector' | 'task'>;
  readonly offsetCommitCompletion: Counter<'connector' | 'task'>;
  readonly offsetCommitSkip: Counter<'connector' | 'task'>;
  readonly sourceRecordPoll: Counter<'connector' | 'task'>;
  readonly sourceRecordWrite: Counter<'connector' | 'task'>;
  readonly recordErrors: Counter<'connector' | 'task'>;
  readonly recordFailures: Counter<'connector' | 'task'>;
  readonly recordsSkipped: Counter<'connector' | 'task'>;
  readonly retries: Counter<'connector' | 'task'>;
  readonly errorsLogged: Counter<'connector' | 'task'>;
  readonly dlqProduceRequests: Counter<'connector' | 'task'>;
  readonly dlqProduceFailures: Counter<'connector' | 'task'>;
  readonly lastErrorTimestamp: Gauge<'connector' | 'task'>;
  readonly taskStatus: Gauge<'connector' | 'task' | 'status'>;
  readonly pausedPartitions: Gauge<'connector' | 'task'>;
  readonly consumerLag: Gauge<'connector' | 'task' | 'topic' | 'partition'>;

  constructor(readonly registry: Registry) {
    const labelNames = ['connector', 'task'] as const;
    const registers = [registry];
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames, registers });
    this.sinkRecordRead = counter(
      'kafka_connect_sink_task_sink_record_read_total',
      'Records read from Kafka by the task (Kafka Connect sink-record-read-total).',
    );
    this.sinkRecordSend = counter(
      'kafka_connect_sink_task_sink_record_send_total',
      'Records written by the task: put to the sink, or produced to the output topic by a processor (sink-record-send-total).',
    );
    this.putBatchTime = new Histogram({
      name: 'kafka_connect_sink_task_put_batch_time_seconds',
      help: 'Time to put (or process) one batch of records (Kafka Connect put-batch-avg/max-time-ms).',
      labelNames,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.offsetCommitCompletion = counter(
      'kafka_connect_sink_task_offset_commit_completion_total',
      'Offset commits that completed (offset-commit-completion-total).',
    );
    this.offsetCommitSkip = counter(
      'kafka_connect_sink_task_offset_commit_skip_total',
      'Offset commits skipped because nothing new was acknowledged (offset-commit-skip-total).',
    );
    this.sourceRecordPoll = counter(
      'kafka_connect_source_task_source_record_poll_total',
      'Records produced by the source task poll (source-record-poll-total).',
    );
    this.sourceRecordWrite = counter(
      'kafka_connect_source_task_source_record_write_total',
      'Source records acknowledged by Kafka (source-record-write-total).',
    );
    this.recordErrors = counter(
      'kafka_connect_task_error_total_record_errors',
      'Record processing errors, including retried ones (total-record-errors).',
    );
    this.recordFailures = counter(
      'kafka_connect_task_error_total_record_failures',
      'Record processing attempts that failed (total-record-failures).',
    );
    this.recordsSkipped = counter(
      'kafka_connect_task_error_total_records_skipped',
      'Records skipped because of errors, with errors.tolerance=all (total-records-skipped).',
    );
    this.retries = counter('kafka_connect_task_error_total_retries', 'Retried operations (total-retries).');
    this.errorsLogged = counter(
      'kafka_connect_task_error_total_errors_logged',
      'Errors logged with errors.log.enable=true (total-errors-logged).',
    );
    this.dlqProduceRequests = counter(
      'kafka_connect_task_error_deadletterqueue_produce_requests',
      'Records sent to the dead-letter queue (deadletterqueue-produce-requests).',
    );
    this.dlqProduceFailures = counter(
      'kafka_connect_task_error_deadletterqueue_produce_failures',
      'Failed writes to the dead-letter queue (deadletterqueue-produce-failures).',
    );
    this.lastErrorTimestamp = new Gauge({
      name: 'kafka_connect_task_error_last_error_timestamp',
      help: 'Epoch ms of the last record error (last-error-timestamp).',
      labelNames,
      registers,
    });
    this.taskStatus = new Gauge({
      name: 'kafka_connect_connector_task_status',
      help: 'Task state: 1 for the current status label (RUNNING, PAUSED, FAILED, ...), 0 otherwise.',
      labelNames: ['connector', 'task', 'status'],
      registers,
    });
    this.pausedPartitions = new Gauge({
      name: 'infer_connect_task_paused_partitions',
      help: 'Partitions the task has paused for backpressure or while a dependency recovers.',
      labelNames,
      registers,
    });
    this.consumerLag = new Gauge({
      name: 'infer_connect_consumer_lag',
      help: 'Records between the high watermark and the next offset the task will process, per partition.',
      labelNames: ['connector', 'task', 'topic', 'partition'],
      registers,
    });
  }

  /** Creates every series of a task at zero, so `rate()` and alerts see the first event too. */
  initTask(labels: TaskLabels): void {
    for (const counter of [
      this.sinkRecordRead,
      this.sinkRecordSend,
      this.offsetCommitCompletion,
      this.offsetCommitSkip,
      this.recordErrors,
      this.recordFailures,
      this.recordsSkipped,
      this.retries,
      this.errorsLogged,
      this.dlqProduceRequests,
      this.dlqProduceFailures,
    ]) {
      counter.inc(labels, 0);
    }
    this.pausedPartitions.set(labels, 0);
  }

  setStatus(labels: TaskLabels, status: string): void {
    for (const s of ['UNASSIGNED', 'RUNNING', 'PAUSED', 'STOPPED', 'FAILED', 'RESTARTING']) {
      this.taskStatus.set({ ...labels, status: s }, s === status ? 1 : 0);
    }
  }

  /** Drops every series of a task (connector deleted), so dashboards do not show ghosts. */
  forget(labels: TaskLabels): void {
    for (const metric of [
      this.sinkRecordRead,
      this.sinkRecordSend,
      this.putBatchTime,
      this.offsetCommitCompletion,
      this.offsetCommitSkip,
      this.sourceRecordPoll,
      this.sourceRecordWrite,
      this.recordErrors,
      this.recordFailures,
      this.recordsSkipped,
      this.retries,
      this.errorsLogged,
      this.dlqProduceRequests,
      this.dlqProduceFailures,
      this.lastErrorTimestamp,
      this.pausedPartitions,
    ]) {
      metric.remove(labels);
    }
    for (const s of ['UNASSIGNED', 'RUNNING', 'PAUSED', 'STOPPED', 'FAILED', 'RESTARTING']) {
      this.taskStatus.remove({ ...labels, status: s });
    }
  }
}
