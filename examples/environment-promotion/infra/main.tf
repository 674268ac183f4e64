# Stands in for real infrastructure: `terraform_data` needs no provider download, so the example
# runs anywhere Terraform does.
variable "replicas" { default = 3 }

resource "terraform_data" "web" {
  count = var.replicas
  input = "web-${count.index}"
}

output "instances" { value = terraform_data.web[*].output }
