{{/*
The chart name, or nameOverride.
*/}}
{{- define "evaluator-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of namespaced resources: "<release>-<chart>", or the release name alone when it
already contains the chart name. Truncated to 63 characters (some fields are DNS labels).
*/}}
{{- define "evaluator-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"<fullname>-<suffix>" in at most 63 characters: the full name is cut (and a trailing "-" trimmed)
to make room, so the suffix always survives and two objects never end up with the same name.
For the objects whose names are DNS-1035 labels (the Service) or become label values (a Job's name
is its pods' job-name label), both limited to 63. Call as (list . "suffix").
The names of Roles, RoleBindings and the default leader Lease may be 253 characters long and keep
"<fullname>-<suffix>" whole: a new Lease name would let two leaders run during an upgrade.
*/}}
{{- define "evaluator-operator.suffixedName" -}}
{{- $suffix := index . 1 }}
{{- $base := include "evaluator-operator.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{/*
A duration value ("500ms", "15s", "2m", "1h", as the schema's "duration") in milliseconds, as a
float; 0 for anything else (the schema refuses it first).
*/}}
{{- define "evaluator-operator.durationMs" -}}
{{- $raw := toString . }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $raw }}
{{- $factor := get (dict "ms" 1.0 "s" 1000.0 "m" 60000.0 "h" 3600000.0) (trimPrefix $number $raw) }}
{{- mulf (float64 (default "0" $number)) (default 0.0 $factor) }}
{{- end }}

{{/*
The name of cluster-scoped objects (ClusterRole, ClusterRoleBinding). It carries the release
namespace: two releases of the same name in different namespaces must not fight over one object.
*/}}
{{- define "evaluator-operator.clusterScopedName" -}}
{{- printf "%s-%s" .Release.Namespace (include "evaluator-operator.fullname" .) | trunc 253 | trimSuffix "-" }}
{{- end }}

{{- define "evaluator-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object of the chart carries, whatever its component.
*/}}
{{- define "evaluator-operator.commonLabels" -}}
helm.sh/chart: {{ include "evaluator-operator.chart" . }}
{{ include "evaluator-operator.instanceLabels" . }}
app.kubernetes.io/version: {{ include "evaluator-operator.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: evaluator-operator
{{- end }}

{{- define "evaluator-operator.instanceLabels" -}}
app.kubernetes.io/name: {{ include "evaluator-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of the operator's objects.
*/}}
{{- define "evaluator-operator.labels" -}}
{{ include "evaluator-operator.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Selector labels of the operator pods (immutable in a Deployment's selector: never add to them).
*/}}
{{- define "evaluator-operator.selectorLabels" -}}
{{ include "evaluator-operator.instanceLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "evaluator-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "evaluator-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "evaluator-operator.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is given, else repository:tag.
*/}}
{{- define "evaluator-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "evaluator-operator.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The leader-election Lease name; the Lease Role grants get/update on this name only.
*/}}
{{- define "evaluator-operator.leaderElectionId" -}}
{{- default (printf "%s-leader" (include "evaluator-operator.fullname" .)) .Values.leaderElection.id }}
{{- end }}

{{/*
The operator's rules on the objects it manages, shared by the ClusterRole (all namespaces) and the
per-namespace Roles (watchNamespaces). Exactly the calls the operator makes (test/e2e/rbac.test.ts
compares them with the apiserver's audit log of a run under these rules):
- evaluatorshardsets list/watch: the informer cache (it never gets a set: it reads the cache);
- evaluatorshardsets/status patch: status is written through the status subresource (a JSON Patch);
- evaluatorshardsets/finalizers update: shard Deployments carry an owner reference with
  blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement admission plugin allows only
  to who may update the owner's finalizers (checked inside the Deployment's write, not a call);
- deployments list/watch/patch/create/delete: the informer cache; one Deployment per shard,
  server-side applied (a patch, which the apiserver also authorizes as create when the Deployment
  does not exist yet); pruned (delete);
- secrets get: only to read the Secrets a set names in spec.database.secretRef (the tenant
  reassignment in PostgreSQL) and spec.autoscaling.prometheus.authSecretRef; dropped with
  assignments.enabled: false, which leaves a Prometheus behind authSecretRef unreadable;
- events create: Events on the EvaluatorShardSet (core/v1 Events, one create per Event).
*/}}
{{- define "evaluator-operator.managerRules" -}}
- apiGroups: ["evaluator.iot.dev"]
  resources: ["evaluatorshardsets"]
  verbs: ["list", "watch"]
- apiGroups: ["evaluator.iot.dev"]
  resources: ["evaluatorshardsets/status"]
  verbs: ["patch"]
- apiGroups: ["evaluator.iot.dev"]
  resources: ["evaluatorshardsets/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- if .Values.assignments.enabled }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Cross-field checks the schema cannot word clearly; each fails the render with the setting's name.
- The full name prefixes the metrics Service's name, a DNS-1035 label: lower-case letters, digits
  and "-", starting with a letter (so fullnameOverride=1bad.name, or a release name with a dot,
  fails here rather than at the apiserver halfway through an install).
- Leader election as the operator checks it at start (client-go's order): leaseDuration >
  renewDeadline > 1.2 × retryPeriod (client-go's JitterFactor), and retryPeriod at least 100ms.
  The messages are fixed: they never echo a value.
*/}}
{{- define "evaluator-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: without leader election every replica would reconcile the same sets; set replicaCount: 1 or enable leader election" (int .Values.replicaCount)) }}
{{- end }}
{{- $fullname := include "evaluator-operator.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
{{- if .Values.fullnameOverride }}
{{- fail "fullnameOverride must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit (it names the metrics Service)" }}
{{- else }}
{{- fail "the release name (with nameOverride) must make a DNS-1035 label: lower-case letters, digits and '-', starting with a letter (it names the metrics Service); choose another release name or set fullnameOverride" }}
{{- end }}
{{- end }}
{{- if .Values.leaderElection.enabled }}
{{- $lease := include "evaluator-operator.durationMs" .Values.leaderElection.leaseDuration | float64 }}
{{- $renew := include "evaluator-operator.durationMs" .Values.leaderElection.renewDeadline | float64 }}
{{- $retry := include "evaluator-operator.durationMs" .Values.leaderElection.retryPeriod | float64 }}
{{- if lt $retry 100.0 }}
{{- fail "leaderElection.retryPeriod must be at least 100ms (every retry is a request on the Lease)" }}
{{- end }}
{{- if not (gt $lease $renew) }}
{{- fail "leaderElection.leaseDuration must be greater than leaderElection.renewDeadline (expected leaseDuration > renewDeadline > 1.2 × retryPeriod, as client-go)" }}
{{- end }}
{{- if not (gt $renew (mulf $retry 1.2)) }}
{{- fail "leaderElection.renewDeadline must be greater than 1.2 × leaderElection.retryPeriod (expected leaseDuration > renewDeadline > 1.2 × retryPeriod, as client-go)" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
migrations.databaseSecretRef names a Secret and a key in it, never the connection string itself.
Checked here rather than by a pattern in values.schema.json, whose error would echo the value (and
the password of a connection string pasted by mistake): these messages are fixed.
*/}}
{{- define "evaluator-operator.validateMigrationsSecretRef" -}}
{{- $ref := .Values.migrations.databaseSecretRef }}
{{- if and $ref.name (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" (toString $ref.name))) }}
{{- fail "migrations.databaseSecretRef.name must be the name of the Secret holding the PostgreSQL URL, never the URL itself: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (the value is not shown: it may carry a password)" }}
{{- end }}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" (toString $ref.key)) }}
{{- fail "migrations.databaseSecretRef.key must be a key of that Secret, never the URL itself: letters, digits, '-', '_' and '.' (the value is not shown: it may carry a password)" }}
{{- end }}
{{- end }}

{{/*
tls.caSecret: the CA bundle the operator, the relay and the migration Job trust for PostgreSQL over
TLS (with sslmode in their database URLs). The kubelet mounts the one key read-only; TLS_CA_FILE
names the file. Each helper renders nothing without tls.caSecret.name. The name is checked as the
Secret refs above (a fixed message: a value pasted by mistake is never echoed).
*/}}
{{- define "evaluator-operator.tlsCaPath" -}}/etc/evaluator/tls/ca.crt{{- end }}

{{- define "evaluator-operator.validateTlsCaSecret" -}}
{{- $ca := .Values.tls.caSecret }}
{{- if and $ca.name (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" (toString $ca.name))) }}
{{- fail "tls.caSecret.name must be the name of a Secret in the release namespace: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit" }}
{{- end }}
{{- if or (not (regexMatch "^[-._a-zA-Z0-9]+$" (toString $ca.key))) (eq (toString $ca.key) ".") (eq (toString $ca.key) "..") }}
{{- fail "tls.caSecret.key must be a key of that Secret: letters, digits, '-', '_' and '.', neither '.' nor '..'" }}
{{- end }}
{{- end }}

{{- define "evaluator-operator.tlsCaEnv" -}}
{{- if .Values.tls.caSecret.name }}
- name: TLS_CA_FILE
  value: {{ include "evaluator-operator.tlsCaPath" . }}
{{- end }}
{{- end }}

{{- define "evaluator-operator.tlsCaVolumeMount" -}}
{{- if .Values.tls.caSecret.name }}
- name: tls-ca
  mountPath: {{ include "evaluator-operator.tlsCaPath" . | dir }}
  readOnly: true
{{- end }}
{{- end }}

{{- define "evaluator-operator.tlsCaVolume" -}}
{{- if .Values.tls.caSecret.name }}
- name: tls-ca
  secret:
    secretName: {{ .Values.tls.caSecret.name }}
    items:
      - key: {{ .Values.tls.caSecret.key }}
        path: {{ include "evaluator-operator.tlsCaPath" . | base }}
    # 0444 (read-only for all), written in decimal: YAML 1.1 and 1.2 read a leading 0 differently.
    defaultMode: 292
{{- end }}
{{- end }}
