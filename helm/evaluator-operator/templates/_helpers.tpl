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
per-namespace Roles (watchNamespaces). Each rule is there for one call of the operator:
- evaluatorshardsets get/list/watch: the informer cache and the read-back of its own status write;
- evaluatorshardsets/status get/patch/update: status is written through the status subresource;
- evaluatorshardsets/finalizers update: shard Deployments carry an owner reference with
  blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement admission plugin allows only
  to who may update the owner's finalizers;
- deployments: one Deployment per shard, applied server-side (create/patch), pruned (delete);
- secrets get: only to read the database URL named in spec.database.secretRef, for the tenant
  reassignment in PostgreSQL (dropped with assignments.enabled: false);
- events create/patch: Events on the EvaluatorShardSet (core/v1 Events).
*/}}
{{- define "evaluator-operator.managerRules" -}}
- apiGroups: ["evaluator.iot.dev"]
  resources: ["evaluatorshardsets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["evaluator.iot.dev"]
  resources: ["evaluatorshardsets/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["evaluator.iot.dev"]
  resources: ["evaluatorshardsets/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
{{- if .Values.assignments.enabled }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
Cross-field checks the schema cannot word clearly; each fails the render with the setting's name.
*/}}
{{- define "evaluator-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: without leader election every replica would reconcile the same sets; set replicaCount: 1 or enable leader election" (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
