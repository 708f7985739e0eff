{{/* Labels every object of the release carries. */}}
{{- define "nauti.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nauti
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The image of a daemon: (dict "root" $ "name" "<daemon>" "image" <component image values>). */}}
{{- define "nauti.image" -}}
{{- $repo := .image.repository | default (printf "%s/%s" .root.Values.images.prefix .name) -}}
{{- $tag := .image.tag | default .root.Values.images.tag -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* The hub API URL members use. */}}
{{- define "nauti.hubURL" -}}
{{- if .Values.hub.hubURL -}}
{{- .Values.hub.hubURL -}}
{{- else if contains ":" .Values.tunnel.endpoint -}}
{{- printf "https://[%s]:6443" .Values.tunnel.endpoint -}}
{{- else -}}
{{- printf "https://%s:6443" .Values.tunnel.endpoint -}}
{{- end -}}
{{- end -}}

{{/*
The bootstrap token as a dict (id, secret, expiration). Found again in kube-system when this
release created it before (helm adds the release annotations to every object it owns), so
`helm upgrade` keeps it; random only when there is none (first install, or the token was spent:
octopus deletes a token once its member has joined, and the tokencleaner deletes expired ones).
Kept in .Values once worked out, so the Secret and NOTES.txt show the same token.
*/}}
{{- define "nauti.bootstrapToken" -}}
{{- if not (hasKey .Values "bootstrapTokenRendered") -}}
{{- $token := dict -}}
{{- $secrets := lookup "v1" "Secret" "kube-system" "" -}}
{{- range $s := (get $secrets "items" | default list) -}}
{{- $ann := $s.metadata.annotations | default dict -}}
{{- if and (eq ($s.type | default "") "bootstrap.kubernetes.io/token") (eq (get $ann "meta.helm.sh/release-name") $.Release.Name) (eq (get $ann "meta.helm.sh/release-namespace") $.Release.Namespace) -}}
{{- $data := $s.data | default dict -}}
{{- $_ := set $token "id" (get $data "token-id" | b64dec) -}}
{{- $_ := set $token "secret" (get $data "token-secret" | b64dec) -}}
{{- $_ := set $token "expiration" (get $data "expiration" | default "" | b64dec) -}}
{{- end -}}
{{- end -}}
{{- if not $token.id -}}
{{- $_ := set $token "id" (randAlphaNum 6 | lower) -}}
{{- $_ := set $token "secret" (randAlphaNum 16 | lower) -}}
{{- $expiration := "" -}}
{{- if .Values.bootstrapToken.ttl -}}
{{- $expiration = dateInZone "2006-01-02T15:04:05Z" (now | dateModify (printf "+%s" .Values.bootstrapToken.ttl)) "UTC" -}}
{{- end -}}
{{- $_ := set $token "expiration" $expiration -}}
{{- end -}}
{{- $_ := set .Values "bootstrapTokenRendered" $token -}}
{{- end -}}
{{- toJson .Values.bootstrapTokenRendered -}}
{{- end -}}
