local doc = yaml.decode([[
apiVersion: v1
kind: ConfigMap
metadata:
  name: x
  labels: {app: web, tier: "1"}
data:
  key: |
    multi
    line
list: [1, 0x10, 1.5e3, ~, true, 'str']
]])
print(doc.metadata.labels.app, doc.data.key, yaml.encode(doc))
