module example.com/hellogo

go 1.19
