module example.com/heroku-yml-go

go 1.21
