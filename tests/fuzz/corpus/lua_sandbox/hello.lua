print("hello", job.name, k8s.answer())
on_failure = "continue"
