{{/*
The chart name, cut to the 63 characters a Kubernetes name may have.
*/}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name, with the chart name appended
unless the release name contains it already (the `helm create` convention).
*/}}
{{- define "portcullis.fullname" -}}
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
chart name and version, for the helm.sh/chart label.
*/}}
{{- define "portcullis.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "portcullis.labels" -}}
helm.sh/chart: {{ include "portcullis.chart" . }}
{{ include "portcullis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is immutable).
*/}}
{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the Pods run as.
*/}}
{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository:tag (tag defaults to appVersion), @digest when set.
*/}}
{{- define "portcullis.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The kubernetes.io/tls Secret with the listener's certificate (never created by the chart).
*/}}
{{- define "portcullis.tlsSecret" -}}
{{- default (printf "%s-tls" (include "portcullis.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{/*
The environment variable that carries [state] url when it comes from a Secret.
*/}}
{{- define "portcullis.stateUrlEnv" -}}
PORTCULLIS_STATE_URL
{{- end }}

{{/*
proxy.toml: `.Values.config` plus the keys the chart owns, because they must agree with
the Pod spec: [server] listen / shutdown_grace / watch / [server.tls], [admin] listen and
[state] backend / url. Setting one of those under `config` is an error (use the value
named in the message).
*/}}
{{- define "portcullis.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) }}
{{- $server := default dict (get $cfg "server") }}
{{- range $k, $v := dict "listen" "ports.proxy" "shutdown_grace" "shutdownGraceSeconds" "watch" "(always true)" "tls" "tls.enabled and tls.existingSecret" }}
{{- if hasKey $server $k }}
{{- fail (printf "config.server.%s is set by the chart: use %s" $k $v) }}
{{- end }}
{{- end }}
{{- if hasKey $cfg "admin" }}
{{- fail "config.admin is set by the chart: use ports.admin" }}
{{- end }}
{{- $_ := set $server "listen" (printf "0.0.0.0:%d" (int .Values.ports.proxy)) }}
{{- $_ := set $server "shutdown_grace" (printf "%ds" (int .Values.shutdownGraceSeconds)) }}
{{- $_ := set $server "watch" true }}
{{- if .Values.tls.enabled }}
{{- $_ := set $server "tls" (dict "cert" "tls/tls.crt" "key" "tls/tls.key") }}
{{- end }}
{{- $_ := set $cfg "server" $server }}
{{- $_ := set $cfg "admin" (dict "listen" (printf "0.0.0.0:%d" (int .Values.ports.admin))) }}
{{- $state := default dict (get $cfg "state") }}
{{- range $k := list "backend" "url" }}
{{- if hasKey $state $k }}
{{- fail (printf "config.state.%s is set by the chart: use state.redis.enabled with state.redis.url or state.redis.existingSecret" $k) }}
{{- end }}
{{- end }}
{{- $redis := .Values.state.redis }}
{{- if $redis.enabled }}
{{- $_ := set $state "backend" "redis" }}
{{- if $redis.existingSecret }}
{{- $_ := set $state "url" (printf "${%s}" (include "portcullis.stateUrlEnv" .)) }}
{{- else if $redis.url }}
{{- if regexMatch "^rediss?(\\+[a-z]+)?://[^/@]*:[^/@]*@" $redis.url }}
{{- fail "state.redis.url holds a password: put the whole URL in a Secret and name it in state.redis.existingSecret" }}
{{- end }}
{{- $_ := set $state "url" $redis.url }}
{{- else }}
{{- fail "state.redis.enabled needs state.redis.url or state.redis.existingSecret" }}
{{- end }}
{{- else }}
{{- $_ := set $state "backend" "memory" }}
{{- end }}
{{- $_ := set $cfg "state" $state }}
{{- include "portcullis.integers" $cfg }}
{{- toToml $cfg }}
{{- end }}

{{/*
Helm reads every number in a values file as a float: 100000 would become `100000.0`,
which proxy.toml's integer keys refuse. Turns whole floats back into integers, in place,
through nested tables and arrays (a float key such as sample_ratio accepts an integer).
*/}}
{{- define "portcullis.integers" -}}
{{- $d := . }}
{{- range $k, $v := $d }}
{{- if kindIs "map" $v }}
{{- include "portcullis.integers" $v }}
{{- else if kindIs "slice" $v }}
{{- $out := list }}
{{- range $v }}
{{- if kindIs "map" . }}
{{- include "portcullis.integers" . }}
{{- $out = append $out . }}
{{- else if and (kindIs "float64" .) (eq . (floor .)) }}
{{- $out = append $out (int64 .) }}
{{- else }}
{{- $out = append $out . }}
{{- end }}
{{- end }}
{{- $_ := set $d $k $out }}
{{- else if and (kindIs "float64" $v) (eq $v (floor $v)) }}
{{- $_ := set $d $k (int64 $v) }}
{{- end }}
{{- end }}
{{- end }}
